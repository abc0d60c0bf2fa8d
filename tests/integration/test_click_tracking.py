"""Click and open tracking: signed redirects that only lead to the email's own URLs."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape

from fastapi.testclient import TestClient
from sqlalchemy import select

from remarket_mailer.db.models import TrackingEvent
from remarket_mailer.delivery.providers.memory import MemoryProvider
from remarket_mailer.domain.clock import VirtualClock
from remarket_mailer.entrypoints.api import create_api
from tests.conftest import T0, AppFactory
from tests.helpers import cart_event, consent_event, post, profile_event, run_due


def test_links_are_signed_redirects_to_the_emails_own_urls(
    make_app: AppFactory, clock: VirtualClock
) -> None:
    provider = MemoryProvider()
    app = make_app(provider=provider, click_tracking=True, open_tracking=True)
    client = TestClient(create_api(app))
    post(client, profile_event(T0 - timedelta(minutes=5)))
    post(client, consent_event(T0 - timedelta(minutes=5)))
    post(client, cart_event(T0))
    clock.set(T0 + timedelta(hours=1))
    run_due(app)
    html = next(m for m in provider.outbox if m.tags["workflow"] == "abandoned_cart").html
    hrefs = [unescape(h) for h in re.findall(r'href="([^"]+)"', html)]
    tracked = [h for h in hrefs if h.startswith("https://mail.shop.example/c/")]
    assert tracked, "no link was tracked"
    # Unsubscribe and preference links stay direct (they must work without a redirect).
    assert all(h.startswith("https://mail.shop.example/") for h in hrefs)
    assert any(h.startswith("https://mail.shop.example/u/") for h in hrefs)
    checkout = None
    for href in tracked:
        response = client.get(
            href.removeprefix("https://mail.shop.example"), follow_redirects=False
        )
        assert response.status_code == 302
        if "checkout" in response.headers["location"]:
            checkout = response.headers["location"]
    assert checkout is not None and "utm_campaign=abandoned_cart" in checkout
    # A forged or edited token never redirects.
    forged = tracked[0].removeprefix("https://mail.shop.example")[:-4] + "AAAA"
    assert client.get(forged, follow_redirects=False).status_code == 400
    pixel = re.search(r'src="https://mail.shop.example(/o/[^"]+)"', html)
    assert pixel is not None
    image = client.get(pixel.group(1), headers={"User-Agent": "Mozilla/5.0"})
    assert image.status_code == 200 and image.headers["content-type"] == "image/gif"
    with app.uow() as session:
        rows = list(session.scalars(select(TrackingEvent)))
    kinds = sorted(e.kind for e in rows)
    assert kinds.count("opened") == 1 and "clicked" in kinds
    # The client is kept: the bare "Mozilla/5.0" of Apple's privacy proxy tells a machine.
    assert [e.user_agent for e in rows if e.kind == "opened"] == ["Mozilla/5.0"]
    assert all(e.user_agent == "testclient" for e in rows if e.kind == "clicked")


def test_a_scanner_click_does_not_hide_the_persons_click_on_the_same_link(
    make_app: AppFactory, clock: VirtualClock
) -> None:
    from remarket_mailer.services.webhooks import record_engagement

    provider = MemoryProvider()
    app = make_app(provider=provider)
    client = TestClient(create_api(app))
    post(client, profile_event(T0 - timedelta(minutes=5)))
    post(client, consent_event(T0 - timedelta(minutes=5)))
    post(client, cart_event(T0))
    clock.set(T0 + timedelta(hours=1))
    run_due(app)
    delivery = int(provider.outbox[0].tags["delivery_id"])
    link = "https://shop.example/checkout/cart-1"
    phone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)"
    for agent in ("Barracuda Sentinel", phone, phone):  # scanner, person, the person again
        record_engagement(app.uow, app.clock, delivery, "clicked", link, agent)
    with app.uow() as session:
        clicks = [
            e.user_agent for e in session.scalars(select(TrackingEvent)) if e.kind == "clicked"
        ]
    assert sorted(clicks) == ["Barracuda Sentinel", phone]
