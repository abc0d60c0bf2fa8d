"""The unsubscribe and preference page a recipient opens from an email: in their language,
with the shop's brand, and the RFC 8058 one-click POST working as before."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from remarket_mailer.bootstrap import App
from remarket_mailer.db.consent import latest_consents
from remarket_mailer.db.models import Contact
from remarket_mailer.entrypoints.api import create_api
from tests.conftest import T0, AppFactory
from tests.helpers import cart_event, consent_event, deliveries, post, profile_event

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _contact(client: TestClient, app: App, email: str, **profile: Any) -> int:
    post(client, profile_event(T0 - timedelta(minutes=5), email=email, **profile))
    with app.uow() as session:
        return int(session.scalars(select(Contact.id).where(Contact.email == email)).one())


def _page_for(make_app: AppFactory, **profile: Any) -> tuple[App, TestClient, str]:
    app = make_app()
    client = TestClient(create_api(app))
    contact_id = _contact(client, app, "ann@example.org", **profile)
    return app, client, app.links.unsubscribe_token(contact_id, "marketing")


def test_the_page_speaks_dutch_to_a_dutch_contact(make_app: AppFactory) -> None:
    _app, client, token = _page_for(make_app, locale="nl-NL")
    page = client.get(f"/u/{token}")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<html lang="nl" dir="ltr">' in page.text
    assert "<h1>E-mailvoorkeuren</h1>" in page.text
    assert "Kies wat je niet meer wilt ontvangen:" in page.text
    assert "E-mails: aanbiedingen en nieuws" in page.text
    assert "Afmelden voor alle e-mails" in page.text
    # The form still posts the category names, whatever the language shows.
    assert '<input type="checkbox" name="topics" value="marketing" checked>' in page.text
    assert "Email preferences" not in page.text and "Unsubscribe from" not in page.text


def test_the_page_speaks_russian_to_a_russian_contact(make_app: AppFactory) -> None:
    _app, client, token = _page_for(make_app, locale="ru")
    page = client.get(f"/u/{token}")
    assert page.status_code == 200 and '<html lang="ru" dir="ltr">' in page.text
    assert "<h1>Настройки рассылки</h1>" in page.text
    assert "Письма: акции и новости" in page.text
    assert "Письма: сервисные сообщения" in page.text  # the renewal reminder's category
    assert "Отписаться от всех писем" in page.text
    done = client.post(f"/u/{token}", data={"topics": ["marketing"]}, headers=FORM)
    assert done.status_code == 200
    assert "<h1>Вы отписаны</h1>" in done.text
    assert "Вы больше не будете получать письма: акции и новости." in done.text


def test_a_language_we_do_not_send_in_falls_back_to_english(make_app: AppFactory) -> None:
    for profile in ({"locale": "fr-FR"}, {"locale": None}):
        _app, client, token = _page_for(make_app, **profile)
        page = client.get(f"/u/{token}")
        assert '<html lang="en" dir="ltr">' in page.text, profile
        assert "<h1>Email preferences</h1>" in page.text
        assert "marketing email" in page.text and "service email" in page.text


def test_the_page_carries_the_brand_of_the_emails_and_escapes_it(make_app: AppFactory) -> None:
    app = make_app(
        shop_name='Tom & Jerry <b onmouseover="x">',
        shop_url="https://tom.example",
        shop_address="Canal 1, Utrecht",
    )
    client = TestClient(create_api(app))
    token = app.links.unsubscribe_token(_contact(client, app, "ann@example.org"), "marketing")
    page = client.get(f"/u/{token}").text
    assert "Tom &amp; Jerry &lt;b onmouseover=&#34;x&#34;&gt;" in page
    assert "<b onmouseover" not in page
    assert '<a href="https://tom.example">' in page and "Canal 1, Utrecht" in page
    # The colours are the email layout's: its mj-button and mj-body colours.
    assert "background: #1f6feb" in page and "background: #f4f5f7" in page
    with_logo = make_app(shop_logo_url="https://tom.example/logo.png")
    client = TestClient(create_api(with_logo))
    token = with_logo.links.unsubscribe_token(1, "marketing")
    page = client.get(f"/u/{token}").text
    assert '<img src="https://tom.example/logo.png" alt="Demo Shop">' in page


def test_one_click_post_unsubscribes_at_once_and_confirms_in_the_contact_language(
    make_app: AppFactory,
) -> None:
    app, client, token = _page_for(make_app, locale="nl")
    post(client, consent_event(T0 - timedelta(minutes=1)))
    post(client, cart_event(T0))
    assert {d.status for d in deliveries(app)} == {"scheduled"}
    # What Gmail sends (RFC 8058): no cookie, no auth, no redirect followed.
    response = client.post(
        f"/u/{token}",
        content=b"List-Unsubscribe=One-Click",
        headers=FORM,
        follow_redirects=False,
    )
    assert response.status_code == 200
    assert {(d.status, d.reason) for d in deliveries(app)} == {("skipped", "consent_withdrawn")}
    assert "<h1>Afgemeld</h1>" in response.text
    everything = client.post(f"/u/{token}", data={"scope": "all"}, headers=FORM)
    assert "Je ontvangt geen e-mails meer van ons." in everything.text


def test_a_forged_or_expired_token_is_a_clear_400_page(make_app: AppFactory) -> None:
    _app, client, token = _page_for(make_app, locale="nl")
    forged = token[:-3] + ("xyz" if not token.endswith("xyz") else "abc")
    for method in ("GET", "POST"):
        response = client.request(method, f"/u/{forged}", headers=FORM)
        assert response.status_code == 400, method
        assert "<h1>Link not valid</h1>" in response.text
        assert "This unsubscribe link is not valid." in response.text
    # The contact is unknown from a bad token: the browser's language is the best guess.
    dutch = client.get(
        f"/u/{forged}", headers={"Accept-Language": "fr;q=0.9, nl-BE;q=0.8, en;q=0.5"}
    )
    assert dutch.status_code == 400 and "Deze afmeldlink is niet geldig." in dutch.text
    assert client.get("/u/").status_code == 404  # no token at all: no such page, as before


def test_a_contact_who_allowed_ads_can_stop_them_from_the_page(make_app: AppFactory) -> None:
    """The ad audiences take only contacts with ``ads`` consent; withdrawing it is as easy as
    any unsubscribe: one more choice on the same page, offered to those who gave it."""
    app, client, token = _page_for(make_app, locale="nl")
    before = client.get(f"/u/{token}").text
    assert 'value="ads"' not in before  # never allowed: nothing to withdraw
    post(client, {**consent_event(T0 - timedelta(minutes=1)), "topic": "ads"})
    page = client.get(f"/u/{token}").text
    assert '<input type="checkbox" name="topics" value="ads">' in page  # not ticked for them
    assert "Mijn adres gebruiken om mij advertenties te tonen" in page
    done = client.post(f"/u/{token}", data={"topics": ["ads"]}, headers=FORM)
    assert done.status_code == 200
    assert "We gebruiken je adres niet meer om je advertenties te tonen." in done.text
    assert "e-mails niet meer" not in done.text.lower()  # no email category was left
    assert 'value="ads"' not in client.get(f"/u/{token}").text
    with app.uow() as session:
        contact_id = int(session.scalars(select(Contact.id)).one())
        found = latest_consents(session, [contact_id], ["ads", "marketing"])
    assert found[(contact_id, "ads")] == "withdrawn"
    assert found.get((contact_id, "marketing")) != "withdrawn"  # still gets its emails
