"""Property-based API test against our own OpenAPI, every operation: no input may produce a
5xx, and every response must be documented. The key is an API key and an admin key, and every
integration has a secret, so no route is only ever answered 401/404. Bounded so CI stays
fast."""

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
from tests.helpers import AUTH


def test_api_never_fails_and_matches_its_schema(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'api.db'}"
    upgrade(url)
    settings_ = make_settings(
        database_url=url,
        admin_api_keys=["test-key"],
        shopify_webhook_secrets=["shpss"],
        woocommerce_webhook_secrets=["wc"],
        webhook_secrets={"postmark": "u:p", "mailgun": "mailgun-signing-key"},
    )
    app = build_app(settings_, provider=MemoryProvider(), broker=StubBroker())
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_api(app))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {f"{op.method.upper()} {op.path}" for op in operations} >= {
        "POST /v1/events",
        "POST /v1/events/batch",
        "GET /v1/health",
        "POST /v1/contacts/export",
        "POST /v1/contacts/erase",
        "POST /v1/discounts/validate",
        "POST /v1/discounts/redeem",
        "POST /v1/integrations/shopify",
        "POST /v1/webhooks/{provider}",
    }
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=60,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            database=None,
        )
        def check(case: Case) -> None:
            # Our validators are stricter than JSON Schema can say (deliverable-looking email
            # syntax, IANA zones, ISO currencies), so a schema-valid body may rightly get a
            # 422: the positive-acceptance check is off, every other check (no 5xx, status
            # codes and bodies as documented, negative data rejected) stays on.
            case.call_and_validate(headers=AUTH, excluded_checks=[positive_data_acceptance])

        check()
    app.close()
