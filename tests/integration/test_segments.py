"""Segments end to end, on SQLite and PostgreSQL: members follow the events, the refresh job
follows the clock, workflows filter and exit by segment, and audiences export only the people
who may be shown ads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import event as sa_event
from typer.testing import CliRunner

from remarket_mailer.bootstrap import App
from remarket_mailer.cli import app as cli
from remarket_mailer.delivery.providers.memory import MemoryProvider
from remarket_mailer.domain.audiences import sha256_hex
from remarket_mailer.domain.clock import VirtualClock
from remarket_mailer.entrypoints.api import create_api
from remarket_mailer.entrypoints.scheduler import refresh_segments_job
from remarket_mailer.services.gdpr import erase_contact, export_contact
from remarket_mailer.services.segments import segment_summaries
from tests.conftest import ROOT, T0, AppFactory
from tests.helpers import (
    AUTH,
    arrive,
    cart_event,
    deliveries,
    enrollments,
    event,
    order_event,
    run_due,
)

REMINDER = """
id: reminder
name: Reminder
trigger:
  event: cart.updated
  key: cart_id
  filter: "not in_segment('vip')"
exit:
  - segment: recent_buyers_7d
steps:
  - {id: first, wait: 2d, template: abandoned_cart/reminder_1}
"""


def members(app: App, name: str) -> list[str | None]:
    (summary,) = segment_summaries(app.uow, app.workflows, name, sample=100)
    assert summary.members == len(summary.sample)
    return sorted(email for email, _ in summary.sample)


def consent(at: Any, email: str, topic: str, status: str = "granted") -> dict[str, Any]:
    return event("consent.changed", at, email=email, topic=topic, status=status, source="test")


def reminder_app(make_app: AppFactory, tmp_path: Path) -> App:
    directory = tmp_path / "workflows"
    directory.mkdir()
    (directory / "reminder.yaml").write_text(REMINDER)
    return make_app(workflows_dir=directory)


def test_members_follow_events_and_leave_when_time_passes(
    make_app: AppFactory, clock: VirtualClock
) -> None:
    app = make_app()
    client = TestClient(create_api(app))
    arrive(client, clock, order_event(T0, cart_id=None, email="ann@example.org", total="20.00"))
    batch = [
        order_event(T0, cart_id=None, email="bob@example.org", total="200.00", order_id=f"b{n}")
        for n in range(3)
    ]
    response = client.post("/v1/events/batch", json={"events": batch}, headers=AUTH)
    assert response.status_code == 200, response.text
    assert members(app, "recent_buyers_7d") == ["ann@example.org", "bob@example.org"]
    assert members(app, "vip") == ["bob@example.org"]

    clock.set(T0 + timedelta(days=8))
    report = refresh_segments_job(app)
    assert report.left == {"recent_buyers_7d": 2}
    assert members(app, "recent_buyers_7d") == []
    assert members(app, "vip") == ["bob@example.org"]  # spending does not expire
    (summary,) = segment_summaries(app.uow, app.workflows, "vip")
    assert summary.refreshed_at == clock.now() and not summary.stale


def test_segment_exit_ends_reminders_when_the_contact_buys_anything(
    make_app: AppFactory, clock: VirtualClock, tmp_path: Path
) -> None:
    app = reminder_app(make_app, tmp_path)
    client = TestClient(create_api(app))
    started = arrive(client, clock, cart_event(T0, cart_id="cart-a"))
    assert started["enrollments_started"] == ["reminder"]
    # An order of another cart: no exit rule names it, the segment does.
    arrive(client, clock, order_event(T0 + timedelta(hours=1), cart_id="cart-z"))
    (enrollment,) = enrollments(app)
    assert (enrollment.status, enrollment.exit_reason) == ("exited", "segment recent_buyers_7d")
    assert [(d.status, d.reason) for d in deliveries(app)] == [("skipped", "exited")]


def test_segment_filter_keeps_vips_out(
    make_app: AppFactory, clock: VirtualClock, tmp_path: Path
) -> None:
    app = reminder_app(make_app, tmp_path)
    client = TestClient(create_api(app))
    for n in range(3):
        arrive(client, clock, order_event(T0 - timedelta(days=30), cart_id=None, order_id=f"o{n}"))
    clock.set(T0)
    refresh_segments_job(app)  # the old orders are no longer recent: ann is only a vip
    assert members(app, "vip") == ["ann@example.org"] and not members(app, "recent_buyers_7d")
    assert arrive(client, clock, cart_event(T0, cart_id="cart-v"))["enrollments_started"] == []
    other = cart_event(T0, cart_id="cart-w", contact={"email": "new@example.org"})
    assert arrive(client, clock, other)["enrollments_started"] == ["reminder"]


def test_ingest_updates_segments_in_a_fixed_number_of_statements(
    make_app: AppFactory, clock: VirtualClock
) -> None:
    app = make_app()
    client = TestClient(create_api(app))
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        # The segment update's own statements (ingest's own are counted by its tests).
        if any(t in statement for t in ("segment_members", "segment_states", "tracking_events")):
            statements.append(statement)

    def count(size: int, offset: int) -> int:
        batch = [
            order_event(T0, cart_id=None, email=f"p{offset + n}@example.org") for n in range(size)
        ]
        statements.clear()
        sa_event.listen(app.engine, "before_cursor_execute", record)
        try:
            response = client.post("/v1/events/batch", json={"events": batch}, headers=AUTH)
        finally:
            sa_event.remove(app.engine, "before_cursor_execute", record)
        assert response.status_code == 200
        return len(statements)

    clock.set(T0)
    # One statement reads everything segments need (orders, views, opens and clicks,
    # consents, stored members), one INSERT adds the new members: for 1 event as for 50.
    assert count(1, 0) == count(50, 100) == 2
    assert sum("UNION ALL" in s for s in statements) == 1
    assert len(members(app, "recent_buyers_7d")) == 51


def test_audience_export_only_consented_never_suppressed_or_erased(
    make_app: AppFactory, clock: VirtualClock, database_url: str, tmp_path: Path
) -> None:
    # The command runs on the system clock: the events are stamped around it.
    now = datetime.now(UTC).replace(microsecond=0)
    clock.set(now)
    app = make_app()
    client = TestClient(create_api(app))
    profile = event(
        "contact.upserted",
        now,
        email="Jane.Doe@gmail.com",
        attributes={"phone": "+1 (650) 555-1212"},
    )
    people = {
        "Jane.Doe@gmail.com": "granted",
        "noads@example.org": "withdrawn",
        "bounced@example.org": "granted",
        "erased@example.org": "granted",
        "converted@example.org": "granted",
    }
    arrive(client, clock, profile)
    for email, status in people.items():
        arrive(client, clock, consent(now, email, "ads", status))
        placed = now - timedelta(days=100) if email != "converted@example.org" else now
        order = order_event(placed, cart_id=None, email=email, total="600.00")
        arrive(client, clock, order, expect=202)
    with app.uow() as session:
        from remarket_mailer.db.consent import suppress

        suppress(session, "bounced@example.org", "hard_bounce", None, now)
    exported = export_contact(app.uow, "erased@example.org")
    assert exported is not None
    assert sorted(row["segment"] for row in exported["segments"]) == ["lapsed", "vip"]
    assert erase_contact(app.uow, clock, "erased@example.org").deleted["segment_members"] == 2
    assert "erased@example.org" not in members(app, "vip")

    env = {
        "REMARKET_DATABASE_URL": database_url,
        "REMARKET_WORKFLOWS_DIR": str(ROOT / "workflows"),
        "REMARKET_SEGMENTS_DIR": str(ROOT / "segments"),
    }
    out = tmp_path / "google.csv"
    result = CliRunner().invoke(
        cli,
        ["audiences", "export", "vip", "--format", "google", "--output", str(out),
         "--exclude-converters", "7d"],
        env=env,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert out.read_text().splitlines() == [
        "Email,Phone",
        f"{sha256_hex('janedoe@gmail.com')},{sha256_hex('+16505551212')}",
    ]
    assert "1 suppressed, 1 without ads consent, 1 recent converter(s)" in result.output

    meta = CliRunner().invoke(cli, ["audiences", "export", "vip", "--format", "meta"], env=env)
    assert meta.exit_code == 0, meta.output
    lines = meta.stdout.splitlines()
    assert lines[0] == "email,phone"
    assert f"{sha256_hex('jane.doe@gmail.com')},{sha256_hex('16505551212')}" in lines
    assert f"{sha256_hex('converted@example.org')}," in lines  # no --exclude-converters

    for argv, message in (
        (["audiences", "export", "nope"], "no segment named 'nope'"),
        (["audiences", "export", "vip", "--format", "tiktok"], "--format must be one of"),
        (["audiences", "export", "vip", "--exclude-converters", "soon"], "invalid duration"),
        (["segments", "show", "nope"], "no segment named 'nope'"),
    ):
        failed = CliRunner().invoke(cli, argv, env=env)
        assert failed.exit_code == 2 and message in failed.output, failed.output


def test_segments_list_and_show(
    make_app: AppFactory, clock: VirtualClock, database_url: str
) -> None:
    app = make_app()
    client = TestClient(create_api(app))
    arrive(client, clock, order_event(T0, cart_id=None, email="ann@example.org"))
    env = {
        "REMARKET_DATABASE_URL": database_url,
        "REMARKET_WORKFLOWS_DIR": str(ROOT / "workflows"),
        "REMARKET_SEGMENTS_DIR": str(ROOT / "segments"),
    }
    listed = CliRunner().invoke(cli, ["segments", "list"], env=env)
    assert listed.exit_code == 0, listed.output
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in listed.output.splitlines()]
    rows = {c[0]: c[1:] for c in cells if c}
    assert rows["recent_buyers_7d"][0] == "1" and rows["vip"][0] == "0"
    # ingest changed recent_buyers_7d; nothing has refreshed every contact yet
    assert rows["recent_buyers_7d"][1].startswith(T0.strftime("%Y-%m-%d %H:%M UTC"))
    assert rows["vip"][1].startswith("never (stale")
    shown = CliRunner().invoke(cli, ["segments", "show", "recent_buyers_7d"], env=env)
    assert shown.exit_code == 0, shown.output
    assert "expression: ordered(7) > 0" in shown.output
    assert "members: 1" in shown.output and "ann@example.org" in shown.output


def test_step_condition_asks_the_segment_at_send_time(
    make_app: AppFactory, clock: VirtualClock, tmp_path: Path
) -> None:
    directory = tmp_path / "workflows"
    directory.mkdir()
    (directory / "vip_only.yaml").write_text(
        """
id: vip_only
name: VIP only
trigger: {event: cart.updated, key: cart_id}
steps:
  - {id: first, wait: 1h, template: abandoned_cart/reminder_1, condition: "in_segment('vip')"}
"""
    )
    provider = MemoryProvider()
    app = make_app(provider, workflows_dir=directory)
    client = TestClient(create_api(app))
    for who in ("vip@example.org", "new@example.org"):
        arrive(client, clock, consent(T0, who, "marketing"))
    for n in range(3):
        arrive(
            client, clock, order_event(T0, cart_id=None, email="vip@example.org", order_id=f"v{n}")
        )
    for who in ("vip@example.org", "new@example.org"):
        arrive(client, clock, cart_event(T0, cart_id=f"cart-{who}", contact={"email": who}))
    clock.set(T0 + timedelta(hours=2))
    run_due(app)
    outcome = {d.step_id + ":" + str(d.contact_id): (d.status, d.reason) for d in deliveries(app)}
    assert sorted(outcome.values()) == [("sent", None), ("skipped", "condition_false")]
    assert [m.to_addr for m in provider.outbox] == ["vip@example.org"]


def test_the_refresh_exits_people_who_drift_into_a_segment(
    make_app: AppFactory, clock: VirtualClock, tmp_path: Path
) -> None:
    directory = tmp_path / "workflows"
    directory.mkdir()
    (directory / "nudge.yaml").write_text(
        REMINDER.replace("reminder", "nudge")
        .replace("recent_buyers_7d", "lapsed")
        .replace("wait: 2d", "wait: 10d")
    )
    app = make_app(workflows_dir=directory)
    client = TestClient(create_api(app))
    arrive(client, clock, order_event(T0 - timedelta(days=88), cart_id=None))
    clock.set(T0)
    assert arrive(client, clock, cart_event(T0, cart_id="c-1"))["enrollments_started"] == ["nudge"]
    assert refresh_segments_job(app).exited == 0  # 88 days: not lapsed yet
    clock.set(T0 + timedelta(days=3))
    report = refresh_segments_job(app)
    assert (report.joined, report.exited) == ({"lapsed": 1}, 1)
    (enrollment,) = enrollments(app)
    assert (enrollment.status, enrollment.exit_reason) == ("exited", "segment lapsed")


def test_the_scheduler_runs_the_refresh_when_there_are_segments(make_app: AppFactory) -> None:
    from apscheduler.schedulers.background import BackgroundScheduler

    from remarket_mailer.entrypoints.scheduler import add_jobs

    scheduler = BackgroundScheduler(timezone="UTC")
    add_jobs(scheduler, make_app())
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {
        "sweep",
        "expire_discounts",
        "renewal_scan",
        "product_alerts",
        "decide_ab_tests",
        "refresh_segments",
    }
    # Every job runs alone and missed runs fold into one.
    assert all(j.max_instances == 1 and j.coalesce for j in jobs.values())
    assert str(jobs["renewal_scan"].trigger) == "cron[minute='17']"
    assert str(jobs["refresh_segments"].trigger) == "interval[0:15:00]"
