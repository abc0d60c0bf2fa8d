"""Stored API keys: valid ones are remembered for a short while (no transaction per request),
refused ones never are, and a revoked key stops working once its moment has passed."""

from __future__ import annotations

import pytest

from remarket_mailer.db.models import ApiKey
from remarket_mailer.errors import ValidationError
from remarket_mailer.services.api_keys import (
    RecentlyValid,
    create_key,
    hash_key,
    is_valid_key,
    list_keys,
    new_key,
    revoke_key,
)
from tests.conftest import T0, AppFactory
from tests.helpers import cart_event


def test_a_stored_key_works_at_once_and_a_revoked_unseen_one_never(make_app: AppFactory) -> None:
    from fastapi.testclient import TestClient

    from remarket_mailer.entrypoints.api import create_api

    app = make_app()
    live, revoked = new_key(), new_key()
    with app.uow() as session:
        session.add(ApiKey(name="live", key_hash=hash_key(live), created_at=T0))
        session.add(ApiKey(name="gone", key_hash=hash_key(revoked), created_at=T0, revoked_at=T0))
    client = TestClient(create_api(app))
    for n in range(3):
        response = client.post(
            "/v1/events",
            json=cart_event(T0, event_id=f"k-{n}"),
            headers={"Authorization": f"Bearer {live}"},
        )
        assert response.status_code == 202, response.text
    for _ in range(2):
        response = client.post(
            "/v1/events",
            json=cart_event(T0, event_id="k-x"),
            headers={"Authorization": f"Bearer {revoked}"},
        )
        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized"


def test_remembered_keys_expire() -> None:
    now = [100.0]
    recent = RecentlyValid(ttl=30, clock=lambda: now[0])
    assert "rk_a" not in recent
    recent.add("rk_a")
    assert "rk_a" in recent and "rk_b" not in recent
    now[0] += 29.9
    assert "rk_a" in recent
    now[0] += 0.2
    assert "rk_a" not in recent


def test_a_second_key_of_the_same_name_is_refused_and_the_first_keeps_working(
    make_app: AppFactory,
) -> None:
    app = make_app()
    first = create_key(app.uow, "shop", T0)
    with pytest.raises(ValidationError, match="'shop' exists already"):
        create_key(app.uow, "shop", T0)
    assert [k.name for k in list_keys(app.uow)] == ["shop"]
    assert is_valid_key(app.uow, [], first)
    assert revoke_key(app.uow, "shop", T0)
    assert not revoke_key(app.uow, "shop", T0)  # nothing active left under that name
    assert not is_valid_key(app.uow, [], first)
    # Revoked keys keep their name: it cannot be given to a new one.
    with pytest.raises(ValidationError):
        create_key(app.uow, "shop", T0)
