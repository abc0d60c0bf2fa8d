"""SigV4 benchmark: our signer against botocore's ``SigV4Auth`` on the same SES request.

Signs one ``POST /v2/email/outbound-emails`` with a ~4 KB JSON body, ``--rounds`` interleaved
rounds of ``--count`` signatures each, and prints µs per signature (median and range) for
both, and the ratio. Both signatures are compared first: they must be equal.

    python benchmarks/sigv4.py [--count 5000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from unittest import mock

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from remarket_mailer.delivery.providers.aws import AwsCredentials, sigv4_sign

URL = "https://email.eu-west-1.amazonaws.com/v2/email/outbound-emails"
WHEN = datetime(2026, 12, 3, 10, 0, 0, tzinfo=UTC)
BODY = json.dumps(
    {
        "FromEmailAddress": "Shop <news@mail.shop.example>",
        "Destination": {"ToAddresses": ["ann@example.org"]},
        "Content": {"Simple": {"Subject": {"Data": "Hi"}, "Body": {"Html": {"Data": "x" * 4000}}}},
    }
).encode()
KEYS = AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "token")


def ours() -> str:
    return sigv4_sign(
        method="POST",
        url=URL,
        headers={"Content-Type": "application/json"},
        body=BODY,
        credentials=KEYS,
        region="eu-west-1",
        service="ses",
        when=WHEN,
    )["Authorization"]


_BOTO = SigV4Auth(
    Credentials(KEYS.access_key_id, KEYS.secret_access_key, KEYS.session_token),
    "ses",
    "eu-west-1",
)


def botocore_sign() -> str:
    request = AWSRequest(
        method="POST", url=URL, data=BODY, headers={"Content-Type": "application/json"}
    )
    _BOTO.add_auth(request)
    return str(request.headers["Authorization"])


def _per_call(fn: Callable[[], str], count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        fn()
    return (time.perf_counter() - start) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    # botocore takes the time from botocore.compat.get_current_datetime(): pin it to ours.
    with mock.patch("botocore.auth.get_current_datetime", return_value=WHEN):
        theirs = botocore_sign()
        if theirs != ours():
            raise SystemExit(f"signatures differ:\n ours    {ours()}\n botocore {theirs}")
        ours_us: list[float] = []
        boto_us: list[float] = []
        for _ in range(args.rounds):
            ours_us.append(_per_call(ours, args.count))
            boto_us.append(_per_call(botocore_sign, args.count))
    a, b = statistics.median(ours_us), statistics.median(boto_us)
    print(f"ours      {a:7.1f} µs/signature ({min(ours_us):.1f}–{max(ours_us):.1f})")
    print(f"botocore  {b:7.1f} µs/signature ({min(boto_us):.1f}–{max(boto_us):.1f})")
    print(f"ratio     {b / a:.2f}x (botocore time / ours; > 1 means ours is faster)")


if __name__ == "__main__":
    main()
