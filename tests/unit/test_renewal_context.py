"""The renewal scan writes its enrollment context as hand-built JSON text: it must be the
JSON of the same event, whatever the shop put in the subscription id."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from remarket_mailer.db.renewals import RenewalCandidate
from remarket_mailer.services.renewal_scan import renewal_context

texts = st.none() | st.text()


@given(
    subscription_id=st.text(min_size=1),
    plan=texts,
    status=texts,
    currency=texts,
    price=st.none() | st.decimals(allow_nan=False, allow_infinity=False, places=2),
    offset=st.integers(min_value=0, max_value=10**8),
    holdout=st.booleans(),
)
def test_context_is_the_json_of_the_event(
    subscription_id: str,
    plan: str | None,
    status: str | None,
    currency: str | None,
    price: Decimal | None,
    offset: int,
    holdout: bool,
) -> None:
    renews_at = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=offset)
    candidate = RenewalCandidate(
        subscription_id, 7, renews_at, plan, status, price, currency, None, None, None
    )
    assert json.loads(renewal_context(candidate, holdout)) == {
        "event": {
            "type": "subscription.upserted",
            "subscription_id": subscription_id,
            "renews_at": renews_at.isoformat(),
            "source": "renewal_scan",
        },
        "holdout": holdout,
    }
