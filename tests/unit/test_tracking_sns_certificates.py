"""SNS certificate fetching: only SNS URLs, cached by host and path, bounded, rate-limited.

Every request names its own SigningCertURL before anything is verified, so these limits are
all that stands between an anonymous sender and unbounded outbound fetches and memory.
"""

from __future__ import annotations

import httpx
import pytest

from remarket_mailer.tracking import sns
from remarket_mailer.tracking.events import WebhookBusyError, WebhookSignatureError

PEM = b"-----BEGIN CERTIFICATE-----\nnot parsed here\n-----END CERTIFICATE-----\n"
BASE = "https://sns.eu-west-1.amazonaws.com"


class FakeAws:
    """A MockTransport handler that serves a PEM for every path (or 404) and counts requests."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.requests: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(str(request.url))
        return httpx.Response(self.status, content=PEM if self.status == 200 else b"no")


class Ticker:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def certificates(aws: FakeAws, **options: object) -> sns.SnsCertificates:
    return sns.SnsCertificates(transport=httpx.MockTransport(aws), **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "location"),
    [
        (f"{BASE}/SimpleNotificationService-abc.pem", f"{BASE}/SimpleNotificationService-abc.pem"),
        (f"{BASE}/S-abc.pem?x=1#y", f"{BASE}/S-abc.pem"),
        ("https://sns.cn-north-1.amazonaws.com.cn/S-1.pem", None),
        ("https://sns.us-gov-west-1.amazonaws.com/S-1.pem", None),
        ("https://SNS.AP-Southeast-2.amazonaws.com/S-1.pem", f"{BASE[:12]}ap-southeast-2"
         ".amazonaws.com/S-1.pem"),
    ],
)  # fmt: skip
def test_sns_certificate_urls_are_fetched_without_their_query(
    url: str, location: str | None
) -> None:
    assert sns.certificate_location(url) == (location or url)


@pytest.mark.parametrize(
    "url",
    [
        "https://sns.amazonaws.com/S-1.pem",
        "https://sns.eu-west-1.amazonaws.com/",
        "https://sns.eu-west-1.amazonaws.com/S-1.pem.txt",
        "https://sns.eu-west-1.amazonaws.com.cn.evil.example/S-1.pem",
        "https://sns.x.amazonaws.com/S-1.pem",
        "https://sns.eu-west-1.amazonaws.com:99999/S-1.pem",
        "https://[::1/S-1.pem",
        "",
    ],
)
def test_other_urls_are_refused_before_any_fetch(url: str) -> None:
    aws = FakeAws()
    with pytest.raises(WebhookSignatureError):
        certificates(aws).fetch(url)
    assert aws.requests == []


def test_a_new_query_string_does_not_make_a_new_fetch() -> None:
    aws = FakeAws()
    cache = certificates(aws, fetches_per_minute=1)
    for n in range(40):
        assert cache.fetch(f"{BASE}/SimpleNotificationService-abc.pem?n={n}") == PEM
    assert aws.requests == [f"{BASE}/SimpleNotificationService-abc.pem"]


def test_the_cache_keeps_the_32_most_recently_used() -> None:
    aws = FakeAws()
    cache = certificates(aws, fetches_per_minute=1000)
    for n in range(40):
        cache.fetch(f"{BASE}/cert-{n}.pem")
    assert len(aws.requests) == 40
    cache.fetch(f"{BASE}/cert-39.pem")
    cache.fetch(f"{BASE}/cert-8.pem")  # the oldest one kept: now the most recent
    assert len(aws.requests) == 40
    cache.fetch(f"{BASE}/cert-41.pem")  # evicts cert-9, not cert-8
    cache.fetch(f"{BASE}/cert-8.pem")
    assert len(aws.requests) == 41
    cache.fetch(f"{BASE}/cert-0.pem")
    cache.fetch(f"{BASE}/cert-9.pem")
    assert len(aws.requests) == 43


def test_unknown_certificates_beyond_the_budget_are_busy_without_fetching() -> None:
    aws, ticker = FakeAws(), Ticker()
    cache = certificates(aws, fetches_per_minute=5, monotonic=ticker)
    for n in range(5):
        cache.fetch(f"{BASE}/cert-{n}.pem")
        ticker.now += 1
    for n in range(5, 20):
        with pytest.raises(WebhookBusyError) as busy:
            cache.fetch(f"{BASE}/cert-{n}.pem")
    assert len(aws.requests) == 5
    assert busy.value.retry_after == pytest.approx(55.0)
    assert cache.fetch(f"{BASE}/cert-0.pem") == PEM  # cached ones still answer
    ticker.now += 55
    cache.fetch(f"{BASE}/cert-5.pem")  # the first slot of the minute is free again
    assert len(aws.requests) == 6


def test_failed_downloads_count_against_the_budget_and_are_not_cached() -> None:
    aws, ticker = FakeAws(status=404), Ticker()
    cache = certificates(aws, fetches_per_minute=3, monotonic=ticker)
    for _ in range(3):
        with pytest.raises(WebhookSignatureError, match="could not fetch"):
            cache.fetch(f"{BASE}/missing.pem")
    with pytest.raises(WebhookBusyError):
        cache.fetch(f"{BASE}/missing.pem")
    assert len(aws.requests) == 3
