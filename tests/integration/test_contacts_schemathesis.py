"""The GDPR endpoints against their own OpenAPI, with an admin key: no input produces a 5xx,
and every answer (401, 404, 413, 415, 422...) is one the schema documents."""

from __future__ import annotations

from pathlib import Path

import schemathesis
from dramatiq.brokers.stub import StubBroker
from hypothesis import HealthCheck, given, settings
from schemathesis.generation.case import Case
from schemathesis.specs.openapi.checks import positive_data_acceptance

from remarket_mailer.bootstrap import build_app
from remarket_mailer.db.migrate import upgrade
from remarket_mailer.delivery.providers.memory import MemoryProvider
from remarket_mailer.entrypoints.api import create_api
from tests.conftest import make_settings

ADMIN = {"Authorization": "Bearer admin-key"}


def test_contacts_endpoints_never_fail_with_an_admin_key(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'api.db'}"
    upgrade(url)
    app = build_app(
        make_settings(database_url=url, admin_api_keys=["admin-key"]),
        provider=MemoryProvider(),
        broker=StubBroker(),
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_api(app))
    operations = [
        result.ok()
        for result in schema.get_all_operations()
        if result.ok().path.startswith("/v1/contacts/")
    ]
    assert {f"{op.method.upper()} {op.path}" for op in operations} == {
        "POST /v1/contacts/export",
        "POST /v1/contacts/erase",
    }
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=80,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            database=None,
        )
        def check(case: Case) -> None:
            # A schema-valid address nobody has is a documented 404 on export.
            case.call_and_validate(headers=ADMIN, excluded_checks=[positive_data_acceptance])

        check()
    app.close()
