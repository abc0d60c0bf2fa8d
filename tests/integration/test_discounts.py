"""Discount code pools on SQLite and PostgreSQL: import, hand out, check, redeem, expire."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import event, select
from typer.testing import CliRunner

from remarket_mailer.bootstrap import App
from remarket_mailer.db.engine import make_engine, make_session_factory
from remarket_mailer.db.migrate import upgrade
from remarket_mailer.db.models import Contact, DiscountCode, Enrollment
from remarket_mailer.entrypoints.discounts_api import discounts_router
from remarket_mailer.entrypoints.discounts_cli import discounts_app
from remarket_mailer.entrypoints.http import install_error_handlers
from remarket_mailer.errors import ValidationError
from remarket_mailer.services.discounts import (
    ImportReport,
    assign_from_pool,
    expire_codes,
    import_pool,
    pool_stock,
    redeem_code,
    validate_code,
)
from remarket_mailer.services.unit_of_work import UnitOfWork
from tests.conftest import T0, AppFactory, truncate_all
from tests.helpers import AUTH

pytestmark = pytest.mark.integration

LATER = T0 + timedelta(days=30)


@pytest.fixture
def app(make_app: AppFactory) -> App:
    return make_app()


def people(uow: UnitOfWork, count: int, prefix: str = "p") -> list[tuple[int, int]]:
    """``count`` contacts, each enrolled once: [(contact_id, enrollment_id)]."""
    with uow() as session:
        pairs = []
        for n in range(count):
            contact = Contact(
                external_id=f"{prefix}{n}",
                email=f"{prefix}{n}@example.org",
                attributes={},
                created_at=T0,
                updated_at=T0,
            )
            session.add(contact)
            session.flush()
            enrollment = Enrollment(
                workflow_id="abandoned_cart",
                workflow_version="1",
                key=f"{prefix}-cart-{n}",
                contact_id=contact.id,
                status="active",
                started_at=T0,
                context={},
            )
            session.add(enrollment)
            session.flush()
            pairs.append((contact.id, enrollment.id))
    return pairs


def codes(count: int, prefix: str = "POOL") -> list[str]:
    return [f"{prefix}-{n:05d}" for n in range(count)]


def percent_pool(uow: UnitOfWork, pool: str, items: list[str], **terms: Any) -> ImportReport:
    values: dict[str, Any] = {
        "kind": "percent",
        "value": Decimal("10"),
        "currency": None,
        "minimum_order": None,
        "expires_at": None,
        "now": T0,
    }
    values.update(terms)
    return import_pool(uow, pool, items, **values)


def rows(uow: UnitOfWork) -> dict[str, DiscountCode]:
    with uow() as session:
        return {c.code: c for c in session.scalars(select(DiscountCode))}


# --- import ---------------------------------------------------------------------------------


def test_import_adds_available_codes_with_their_terms(app: App) -> None:
    report = import_pool(
        app.uow,
        "spring",
        ["spring-0001", " SPRING-0002 ", "SPRING-0001", "", "NO", "HAS SPACE"],
        kind="fixed",
        value=Decimal("5.00"),
        currency="EUR",
        minimum_order=Decimal("20"),
        expires_at=LATER,
        now=T0,
    )
    assert report == ImportReport(added=2, already_present=0, invalid=["NO", "HAS SPACE"])
    stored = rows(app.uow)
    assert sorted(stored) == ["SPRING-0001", "SPRING-0002"]
    code = stored["SPRING-0001"]
    assert (code.pool, code.status, code.kind, code.value, code.currency) == (
        "spring",
        "available",
        "fixed",
        Decimal("5.00"),
        "EUR",
    )
    assert code.minimum_order == Decimal("20.00")
    assert code.expires_at == LATER
    assert code.contact_id is None and code.enrollment_id is None


def test_codes_already_known_in_any_pool_are_counted_not_duplicated(app: App) -> None:
    percent_pool(app.uow, "spring", codes(3))
    report = percent_pool(app.uow, "summer", [*codes(5), "SUMMER-0001"])
    assert report == ImportReport(added=3, already_present=3, invalid=[])
    stored = rows(app.uow)
    assert len(stored) == 6
    assert stored["POOL-00000"].pool == "spring", "an existing code keeps its pool"
    again = percent_pool(app.uow, "summer", codes(5))
    assert again == ImportReport(added=0, already_present=5, invalid=[])


def test_import_is_one_statement_per_chunk(app: App) -> None:
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT"):
            statements.append(statement)

    done: list[int] = []
    event.listen(app.engine, "before_cursor_execute", count)
    try:
        report = import_pool(
            app.uow,
            "big",
            codes(1203),
            kind="percent",
            value=Decimal("15"),
            currency=None,
            minimum_order=None,
            expires_at=None,
            now=T0,
            progress=done.append,
        )
    finally:
        event.remove(app.engine, "before_cursor_execute", count)
    assert report.added == 1203
    assert len(statements) == 3
    assert done == [500, 500, 203]
    with app.uow() as session:
        assert pool_stock(session, "big") == 1203


@pytest.mark.parametrize(
    ("terms", "field"),
    [
        ({"kind": "fixed", "value": Decimal("5"), "currency": None}, "currency"),
        ({"value": Decimal("0")}, "value"),
        ({"value": Decimal("120")}, "value"),
        ({"value": Decimal("9.999")}, "value"),
        ({"minimum_order": Decimal("20")}, "currency"),
        ({"expires_at": T0 - timedelta(days=1)}, "expires_at"),
        ({"currency": "euro"}, "currency"),
    ],
)
def test_bad_terms_are_refused_and_nothing_is_stored(
    app: App, terms: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        percent_pool(app.uow, "spring", codes(3), **terms)
    assert caught.value.field == field
    assert rows(app.uow) == {}


# --- assignment -----------------------------------------------------------------------------


def test_assignment_is_idempotent_per_enrollment_and_step(app: App) -> None:
    percent_pool(app.uow, "cart", codes(5))
    (ann, ann_enrollment), (ben, ben_enrollment) = people(app.uow, 2)
    with app.uow() as session:
        first = assign_from_pool(
            session, "cart", contact_id=ann, enrollment_id=ann_enrollment, step_id="r2", now=T0
        )
    with app.uow() as session:
        again = assign_from_pool(
            session, "cart", contact_id=ann, enrollment_id=ann_enrollment, step_id="r2", now=T0
        )
        other_step = assign_from_pool(
            session, "cart", contact_id=ann, enrollment_id=ann_enrollment, step_id="r3", now=T0
        )
        other_person = assign_from_pool(
            session, "cart", contact_id=ben, enrollment_id=ben_enrollment, step_id="r2", now=T0
        )
    assert first is not None and again is not None
    assert other_step is not None and other_person is not None
    assert again.code == first.code
    assert len({first.code, other_step.code, other_person.code}) == 3
    stored = rows(app.uow)[first.code]
    assert (stored.status, stored.contact_id, stored.enrollment_id, stored.step_id) == (
        "assigned",
        ann,
        ann_enrollment,
        "r2",
    )
    assert stored.assigned_at == T0
    with app.uow() as session:
        assert pool_stock(session, "cart") == 2


def test_exhausted_pool_gives_none_and_warns(app: App, caplog: pytest.LogCaptureFixture) -> None:
    percent_pool(app.uow, "tiny", codes(2))
    pairs = people(app.uow, 3)
    caplog.set_level(logging.WARNING, logger="remarket_mailer.services.discounts")
    given = []
    with app.uow() as session:
        for contact, enrollment in pairs:
            given.append(
                assign_from_pool(
                    session,
                    "tiny",
                    contact_id=contact,
                    enrollment_id=enrollment,
                    step_id="s",
                    now=T0,
                    low_stock=2,
                )
            )
    assert [g is not None for g in given] == [True, True, False]
    messages = [r.getMessage() for r in caplog.records]
    assert "discount_pool_low pool=tiny remaining=1 threshold=2" in messages
    assert "discount_pool_low pool=tiny remaining=0 threshold=2" in messages
    assert any(m.startswith("discount_pool_exhausted pool=tiny") for m in messages)
    assert not any("@" in m for m in messages), "no email address in the logs"


def test_no_warning_while_stock_is_high(app: App, caplog: pytest.LogCaptureFixture) -> None:
    percent_pool(app.uow, "big", codes(10))
    ((contact, enrollment),) = people(app.uow, 1)
    caplog.set_level(logging.WARNING, logger="remarket_mailer.services.discounts")
    with app.uow() as session:
        assign_from_pool(
            session,
            "big",
            contact_id=contact,
            enrollment_id=enrollment,
            step_id="s",
            now=T0,
            low_stock=5,
        )
    assert caplog.records == []


def test_codes_past_their_expiry_are_not_handed_out(app: App) -> None:
    percent_pool(app.uow, "cart", ["OLD-00001"], expires_at=T0 + timedelta(hours=1))
    percent_pool(app.uow, "cart", ["NEW-00001"], expires_at=LATER)
    ((contact, enrollment),) = people(app.uow, 1)
    later = T0 + timedelta(hours=2)
    with app.uow() as session:
        assert pool_stock(session, "cart", now=later) == 1
        code = assign_from_pool(
            session, "cart", contact_id=contact, enrollment_id=enrollment, step_id="s", now=later
        )
    assert code is not None and code.code == "NEW-00001"


def test_unknown_pool_is_exhausted(app: App) -> None:
    ((contact, enrollment),) = people(app.uow, 1)
    with app.uow() as session:
        assert (
            assign_from_pool(
                session, "nope", contact_id=contact, enrollment_id=enrollment, step_id="s", now=T0
            )
            is None
        )


# --- validation -----------------------------------------------------------------------------


@pytest.fixture
def assigned(app: App) -> dict[str, Any]:
    """Ann holds a 5 EUR code (minimum 20 EUR) and a 10% code; Ben exists too."""
    (ann, ann_enrollment), (ben, _) = people(app.uow, 2)
    import_pool(
        app.uow,
        "fixed",
        ["FIVE-00001"],
        kind="fixed",
        value=Decimal("5"),
        currency="EUR",
        minimum_order=Decimal("20"),
        expires_at=LATER,
        now=T0,
    )
    percent_pool(app.uow, "pct", ["TEN-00001", "FREE-00001"], expires_at=LATER)
    with app.uow() as session:
        five = assign_from_pool(
            session, "fixed", contact_id=ann, enrollment_id=ann_enrollment, step_id="a", now=T0
        )
        ten = assign_from_pool(
            session, "pct", contact_id=ann, enrollment_id=ann_enrollment, step_id="b", now=T0
        )
    assert five is not None and ten is not None
    return {"ann": ann, "ben": ben, "five": five.code, "ten": ten.code}


def check(
    app: App, code: str, contact: int | None, total: str = "50", currency: str = "EUR", at: Any = T0
) -> tuple[bool, str | None]:
    result = validate_code(
        app.uow, code, contact_id=contact, cart_total=Decimal(total), currency=currency, now=at
    )
    return result.valid, result.reason


def test_validate_reasons(app: App, assigned: dict[str, Any]) -> None:
    ann, ben, five, ten = assigned["ann"], assigned["ben"], assigned["five"], assigned["ten"]
    assert check(app, five, ann) == (True, None)
    assert check(app, f"  {five.lower()} ", ann) == (True, None)
    assert check(app, five, None) == (True, None)
    assert check(app, "NOPE-00000", ann) == (False, "unknown")
    assert check(app, five, ben) == (False, "not_yours")
    assert check(app, five, ann, total="19.99") == (False, "minimum_order")
    assert check(app, five, ann, total="20.00") == (True, None)
    assert check(app, five, ann, currency="USD") == (False, "currency_mismatch")
    assert check(app, ten, ann, total="1", currency="USD") == (True, None)
    assert check(app, five, ann, at=LATER) == (False, "expired")
    assert check(app, "FREE-00001", ben) == (True, None), "an unassigned pool code is anyone's"
    assert redeem_code(app.uow, ten, order_id="o-1", contact_id=ann, now=T0).redeemed
    assert check(app, ten, ann) == (False, "redeemed")


def test_validate_answers_the_terms(app: App, assigned: dict[str, Any]) -> None:
    result = validate_code(
        app.uow,
        assigned["five"],
        contact_id=assigned["ann"],
        cart_total=Decimal("50"),
        currency="EUR",
        now=T0,
    )
    assert (result.kind, result.value, result.currency) == ("fixed", Decimal("5.00"), "EUR")
    assert result.expires_at == LATER


# --- redemption -----------------------------------------------------------------------------


def test_redeem_is_idempotent_by_order(app: App, assigned: dict[str, Any]) -> None:
    ann, five = assigned["ann"], assigned["five"]
    first = redeem_code(app.uow, five, order_id="order-1", contact_id=ann, now=T0)
    assert (first.redeemed, first.reason, first.replay) == (True, None, False)
    later = T0 + timedelta(hours=1)
    again = redeem_code(app.uow, five.lower(), order_id="order-1", contact_id=ann, now=later)
    assert (again.redeemed, again.reason, again.replay) == (True, None, True)
    other = redeem_code(app.uow, five, order_id="order-2", contact_id=ann, now=later)
    assert (other.redeemed, other.reason) == (False, "redeemed")
    stored = rows(app.uow)[five]
    assert (stored.status, stored.order_id, stored.redeemed_at) == ("redeemed", "order-1", T0)


def test_redeem_refusals(app: App, assigned: dict[str, Any]) -> None:
    ann, ben, five = assigned["ann"], assigned["ben"], assigned["five"]
    assert redeem_code(app.uow, "NOPE-0000", order_id="o", contact_id=ann, now=T0).reason == (
        "unknown"
    )
    assert redeem_code(app.uow, five, order_id="o", contact_id=ben, now=T0).reason == "not_yours"
    expired = redeem_code(app.uow, five, order_id="o", contact_id=ann, now=LATER)
    assert (expired.redeemed, expired.reason) == (False, "expired")
    assert rows(app.uow)[five].status == "assigned", "a refusal changes nothing"
    with pytest.raises(ValidationError):
        redeem_code(app.uow, five, order_id="  ", contact_id=ann, now=T0)


def test_redeeming_an_unassigned_pool_code_records_the_buyer(
    app: App, assigned: dict[str, Any]
) -> None:
    done = redeem_code(app.uow, "FREE-00001", order_id="o-9", contact_id=assigned["ben"], now=T0)
    assert done.redeemed
    stored = rows(app.uow)["FREE-00001"]
    assert (stored.status, stored.contact_id) == ("redeemed", assigned["ben"])


# --- expiry ---------------------------------------------------------------------------------


def test_expire_codes_in_one_update(app: App, assigned: dict[str, Any]) -> None:
    percent_pool(app.uow, "forever", ["KEEP-00001"])
    redeem_code(app.uow, assigned["ten"], order_id="o-1", contact_id=assigned["ann"], now=T0)
    assert expire_codes(app.uow, T0) == 0
    updates: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE"):
            updates.append(statement)

    event.listen(app.engine, "before_cursor_execute", count)
    try:
        assert expire_codes(app.uow, LATER) == 2  # FIVE (assigned) and FREE (available)
    finally:
        event.remove(app.engine, "before_cursor_execute", count)
    assert len(updates) == 1
    statuses = {code: row.status for code, row in rows(app.uow).items()}
    assert statuses == {
        assigned["five"]: "expired",
        "FREE-00001": "expired",
        assigned["ten"]: "redeemed",
        "KEEP-00001": "available",
    }
    assert expire_codes(app.uow, LATER) == 0
    assert check(app, assigned["five"], assigned["ann"]) == (False, "expired")


# --- concurrency (PostgreSQL: SKIP LOCKED is what is under test) ----------------------------


@pytest.fixture
def pg_uow(postgres_url: str) -> Iterator[UnitOfWork]:
    truncate_all(postgres_url)
    engine = make_engine(postgres_url)
    yield UnitOfWork(make_session_factory(engine))
    engine.dispose()


def test_concurrent_workers_never_share_a_code(pg_uow: UnitOfWork) -> None:
    threads_count, per_thread = 8, 10
    percent_pool(pg_uow, "rush", codes(50))
    pairs = people(pg_uow, threads_count * per_thread)
    results: list[list[tuple[int, str | None]]] = [[] for _ in range(threads_count)]
    errors: list[BaseException] = []
    start = threading.Barrier(threads_count)

    def worker(slot: int) -> None:
        try:
            start.wait()
            for contact, enrollment in pairs[slot * per_thread : (slot + 1) * per_thread]:
                with pg_uow() as session:
                    code = assign_from_pool(
                        session,
                        "rush",
                        contact_id=contact,
                        enrollment_id=enrollment,
                        step_id="s",
                        now=T0,
                    )
                    results[slot].append((enrollment, code.code if code else None))
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    given = [code for chunk in results for _, code in chunk if code is not None]
    assert len(given) == 50
    assert len(set(given)) == 50, "a code was handed out twice"
    assert sum(code is None for chunk in results for _, code in chunk) == 30
    stored = rows(pg_uow)
    assert all(row.status == "assigned" for row in stored.values())
    by_enrollment = {e: c for chunk in results for e, c in chunk if c is not None}
    assert {row.enrollment_id: row.code for row in stored.values()} == by_enrollment


def test_concurrent_sends_of_one_step_share_one_code(pg_uow: UnitOfWork) -> None:
    percent_pool(pg_uow, "rush", codes(20))
    ((contact, enrollment),) = people(pg_uow, 1)
    got: list[str | None] = []
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        with pg_uow() as session:
            code = assign_from_pool(
                session,
                "rush",
                contact_id=contact,
                enrollment_id=enrollment,
                step_id="s",
                now=T0,
            )
            got.append(code.code if code else None)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(got) == 8 and len(set(got)) == 1 and got[0] is not None
    with pg_uow() as session:
        assert pool_stock(session, "rush") == 19


# --- HTTP -----------------------------------------------------------------------------------


@pytest.fixture
def client(app: App) -> TestClient:
    api = FastAPI()
    install_error_handlers(api)
    api.include_router(discounts_router(app))
    return TestClient(api)


def test_validate_over_http(client: TestClient, assigned: dict[str, Any]) -> None:
    body = {
        "code": assigned["five"].lower(),
        "contact": {"email": "P0@Example.org"},
        "cart_total": "74.50",
        "currency": "EUR",
    }
    response = client.post("/v1/discounts/validate", json=body, headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "code": assigned["five"],
        "valid": True,
        "reason": None,
        "kind": "fixed",
        "value": "5.00",
        "currency": "EUR",
        "minimum_order": "20.00",
        "expires_at": LATER.isoformat().replace("+00:00", "Z"),
    }
    for contact, reason in [
        ({"external_id": "p1"}, "not_yours"),
        ({"email": "stranger@example.org"}, "not_yours"),
    ]:
        response = client.post(
            "/v1/discounts/validate", json={**body, "contact": contact}, headers=AUTH
        )
        assert response.json()["reason"] == reason
    response = client.post(
        "/v1/discounts/validate", json={**body, "cart_total": "10.00"}, headers=AUTH
    )
    assert (response.json()["valid"], response.json()["reason"]) == (False, "minimum_order")
    unknown = client.post("/v1/discounts/validate", json={**body, "code": "X" * 80}, headers=AUTH)
    assert unknown.status_code == 200 and unknown.json()["reason"] == "unknown"


def test_redeem_over_http(client: TestClient, assigned: dict[str, Any]) -> None:
    body = {"code": assigned["five"], "order_id": "order-7", "contact": {"external_id": "p0"}}
    first = client.post("/v1/discounts/redeem", json=body, headers=AUTH)
    assert first.status_code == 200, first.text
    assert first.json() == {
        "code": assigned["five"],
        "order_id": "order-7",
        "redeemed": True,
        "replay": False,
    }
    again = client.post("/v1/discounts/redeem", json=body, headers=AUTH)
    assert again.status_code == 200 and again.json()["replay"] is True
    other = client.post("/v1/discounts/redeem", json={**body, "order_id": "o-8"}, headers=AUTH)
    assert other.status_code == 409
    assert other.json()["error"] == "redeemed"
    unknown = client.post("/v1/discounts/redeem", json={**body, "code": "NOPE"}, headers=AUTH)
    assert unknown.status_code == 404 and unknown.json()["error"] == "unknown"
    stranger = client.post(
        "/v1/discounts/redeem",
        json={"code": assigned["ten"], "order_id": "o-9", "contact": {"external_id": "ghost"}},
        headers=AUTH,
    )
    assert stranger.status_code == 409 and stranger.json()["error"] == "not_yours"


def test_http_errors_are_json_4xx(client: TestClient) -> None:
    good = {"code": "ABCD-1234", "cart_total": "10.00", "currency": "EUR"}
    assert client.post("/v1/discounts/validate", json=good).status_code == 401
    wrong_key = {"Authorization": "Bearer nope"}
    response = client.post("/v1/discounts/validate", json=good, headers=wrong_key)
    assert response.status_code == 401 and response.json()["error"] == "unauthorized"

    response = client.post(
        "/v1/discounts/validate", json={**good, "cart_total": 10.5}, headers=AUTH
    )
    assert response.status_code == 422
    assert response.json()["error"] == "validation_error"
    assert [p["field"] for p in response.json()["detail"]] == ["cart_total"]
    assert "decimal string" in response.json()["detail"][0]["message"]

    response = client.post(
        "/v1/discounts/validate",
        json={"code": "", "cart_total": "-1", "currency": "XXY", "contact": {}},
        headers=AUTH,
    )
    assert response.status_code == 422
    fields = {p["field"] for p in response.json()["detail"]}
    assert fields == {"code", "cart_total", "currency", "contact"}

    response = client.post(
        "/v1/discounts/redeem", json={"code": "ABCD-1234", "order_id": ""}, headers=AUTH
    )
    assert response.status_code == 422
    assert [p["field"] for p in response.json()["detail"]] == ["order_id"]

    response = client.post(
        "/v1/discounts/redeem",
        content=b"{not json",
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_json"
    response = client.post(
        "/v1/discounts/redeem", content=b"code=X", headers={**AUTH, "Content-Type": "text/plain"}
    )
    assert response.status_code == 415


def test_openapi_documents_money_as_strings(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert {"/v1/discounts/validate", "/v1/discounts/redeem"} <= set(spec["paths"])
    schemas = spec["components"]["schemas"]
    value = schemas["ValidateResponse"]["properties"]["value"]
    assert {"type": "string"} in value["anyOf"]
    responses = spec["paths"]["/v1/discounts/redeem"]["post"]["responses"]
    assert {"200", "404", "409", "422"} <= set(responses)


# --- CLI ------------------------------------------------------------------------------------


@pytest.fixture
def cli_db(tmp_path: Path) -> tuple[dict[str, str], UnitOfWork]:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    upgrade(url)
    return {"REMARKET_DATABASE_URL": url}, UnitOfWork(make_session_factory(make_engine(url)))


def test_cli_import_and_stock(tmp_path: Path, cli_db: tuple[dict[str, str], UnitOfWork]) -> None:
    env, uow = cli_db
    csv = tmp_path / "klaviyo.csv"
    csv.write_text("Coupon,Coupon Code\nW,aaaa-0001\nW,AAAA-0002\nW,aaaa-0001\nW,\nW,BAD CODE\n")
    runner = CliRunner()
    result = runner.invoke(
        discounts_app,
        [
            "import",
            "welcome",
            str(csv),
            "--amount",
            "5",
            "--currency",
            "eur",
            "--expires",
            "2099-12-31",
            "--minimum-order",
            "20",
        ],
        env=env,
    )
    assert result.exit_code == 0, result.output
    assert "pool welcome: 2 added, 0 already present, 1 invalid" in result.stdout
    assert "1 repeated code(s) skipped on line(s) 4" in result.stdout
    assert "line 6: 'BAD CODE'" in result.stdout
    stored = rows(uow)
    assert sorted(stored) == ["AAAA-0001", "AAAA-0002"]
    code = stored["AAAA-0001"]
    assert (code.kind, code.value, code.currency, code.minimum_order) == (
        "fixed",
        Decimal("5.00"),
        "EUR",
        Decimal("20.00"),
    )
    assert (
        code.expires_at is not None and code.expires_at.isoformat() == "2100-01-01T00:00:00+00:00"
    )

    again = runner.invoke(
        discounts_app, ["import", "welcome", str(csv), "--percent", "10"], env=env
    )
    assert "0 added, 2 already present" in again.stdout

    stock = runner.invoke(discounts_app, ["stock", "welcome"], env=env)
    assert stock.exit_code == 0, stock.output
    assert "pool welcome: 2 code(s) left to hand out" in stock.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["import", "p", "{csv}"], "exactly one of --percent or --amount"),
        (["import", "p", "{csv}", "--percent", "10", "--amount", "5"], "exactly one"),
        (["import", "p", "{csv}", "--amount", "5"], "needs its currency"),
        (["import", "p", "{csv}", "--percent", "ten"], "not a number"),
        (["import", "p", "{csv}", "--percent", "150"], "cannot exceed 100"),
        (["import", "p", "{csv}", "--percent", "10", "--expires", "soon"], "--expires"),
        (["import", "p", "{csv}", "--percent", "10", "--expires", "2020-01-01"], "past"),
        (["import", "p", "{tmp}/missing.csv", "--percent", "10"], "cannot read"),
        (["import", "p", "{tmp}/bad.csv", "--percent", "10"], "bad.csv:1: no code column"),
        (["stock", "nothing-here"], "has no codes"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(
    tmp_path: Path,
    cli_db: tuple[dict[str, str], UnitOfWork],
    args: list[str],
    message: str,
) -> None:
    env, uow = cli_db
    (tmp_path / "codes.csv").write_text("code\nAAAA-0001\n")
    (tmp_path / "bad.csv").write_text("Name,Email\nAnn,ann@example.org\n")
    argv = [a.format(csv=tmp_path / "codes.csv", tmp=tmp_path) for a in args]
    result = CliRunner().invoke(discounts_app, argv, env=env)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output
    assert rows(uow) == {}


def test_cli_database_not_migrated(tmp_path: Path) -> None:
    csv = tmp_path / "codes.csv"
    csv.write_text("code\nAAAA-0001\n")
    env = {"REMARKET_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}"}
    result = CliRunner().invoke(discounts_app, ["import", "p", str(csv), "--percent", "5"], env=env)
    assert result.exit_code == 2
    assert "remarket db upgrade" in result.stderr
