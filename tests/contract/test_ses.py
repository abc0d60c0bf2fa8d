"""Amazon SES v2 as AWS defines it.

- every SendEmail request body our adapter builds is validated with botocore's
  ``ParamValidator`` against botocore's ``sesv2`` service model (shipped in the botocore
  package), plus the model's ``pattern``/``max`` traits (ParamValidator checks types,
  required members and minimums only) and the model's ``Content.Charset`` rule;
- our SigV4 signer is compared with botocore's ``SigV4Auth`` on identical requests, and run on
  the AWS Signature Version 4 test suite (vendored from botocore's tests, Apache-2.0, NOTICE
  kept);
- the errors the model declares for SendEmail (with their HTTP statuses) and a 5xx go through
  our response mapping.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import botocore.auth
import botocore.session
import httpx
import pytest
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.model import Shape
from botocore.validate import ParamValidator

from remarket_mailer.delivery.base import OutboundMessage, Permanent, SendResult, Sent, Transient
from remarket_mailer.delivery.providers.ses import AwsCredentials, SesProvider, sigv4_sign
from tests.contract.support import ALL_MESSAGES, UNICODE_MESSAGES, VENDOR, Recorder

MODEL = botocore.session.get_session().get_service_model("sesv2")
SEND_EMAIL = MODEL.operation_model("SendEmail")
WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
CREDENTIALS = AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")

# Non-ASCII subjects and header values: the lead fixes these on main (Subject Charset UTF-8,
# RFC 2047 header values). The rest of the Unicode cases already pass.
FIXED_ON_MAIN = {"unicode-subject", "unicode-list-id"}


def sent_request(message: OutboundMessage) -> httpx.Request:
    rec = Recorder(lambda r: httpx.Response(200, json={"MessageId": "0102-ses-id"}))
    provider = SesProvider(
        CREDENTIALS,
        "eu-west-1",
        configuration_set="remarketing",
        transport=rec.transport,
        concurrency=1,
        clock=lambda: WHEN,
    )
    assert provider.send_many([message]) == [Sent("0102-ses-id")]
    return rec.only()


def model_trait_errors(value: Any, shape: Shape, path: str = "") -> list[str]:
    """What ParamValidator leaves out: each string's ``pattern`` and ``max``, each list's
    ``max``, and Content's rule that non-ASCII ``Data`` needs a ``Charset``."""
    errors: list[str] = []
    meta = shape.metadata
    if shape.type_name == "structure" and isinstance(value, dict):
        for name, member in shape.members.items():
            if name in value:
                errors += model_trait_errors(value[name], member, f"{path}.{name}")
        text = str(value.get("Data", ""))
        if shape.name == "Content" and not text.isascii() and not value.get("Charset"):
            errors.append(f"{path}: non-ASCII Data without Charset (the model: 7-bit ASCII)")
    elif shape.type_name == "list" and isinstance(value, list):
        if "max" in meta and len(value) > meta["max"]:
            errors.append(f"{path}: {len(value)} items, max {meta['max']}")
        for index, item in enumerate(value):
            errors += model_trait_errors(item, shape.member, f"{path}[{index}]")
    elif shape.type_name == "string" and isinstance(value, str):
        if "max" in meta and len(value) > meta["max"]:
            errors.append(f"{path}: {len(value)} characters, max {meta['max']}")
        pattern = meta.get("pattern")
        if pattern and not re.fullmatch(pattern.removeprefix("^").removesuffix("$"), value):
            errors.append(f"{path}: {value!r} does not match {pattern}")
    return errors


def _model_cases() -> list[Any]:
    cases = []
    for name in sorted(ALL_MESSAGES):
        marks = []
        if name in FIXED_ON_MAIN:
            marks.append(pytest.mark.xfail(strict=True, reason="fixed on main by lead"))
        cases.append(pytest.param(name, marks=marks, id=name))
    return cases


@pytest.mark.parametrize("name", _model_cases())
def test_send_email_request_satisfies_the_sesv2_model(name: str) -> None:
    request = sent_request(ALL_MESSAGES[name])
    assert request.url.path == SEND_EMAIL.http["requestUri"]
    assert request.method == SEND_EMAIL.http["method"]
    params = json.loads(request.content)
    report = ParamValidator().validate(params, SEND_EMAIL.input_shape)
    assert not report.has_errors(), report.generate_report()
    assert model_trait_errors(params, SEND_EMAIL.input_shape) == []
    # EmailTags: the model's documentation allows ASCII letters, digits, _ and -, 256 at most.
    for tag in params["EmailTags"]:
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,256}", tag["Name"]), tag
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,256}", tag["Value"]), tag


def test_a_request_the_model_refuses_is_refused_by_the_check() -> None:
    """The checks themselves can fail: a header value with a line break, a subject without a
    charset, a Destination of the wrong type."""
    params = json.loads(sent_request(ALL_MESSAGES["full"]).content)
    params["Content"]["Simple"]["Headers"].append({"Name": "X-Test", "Value": "a\nb"})
    params["Content"]["Simple"]["Subject"] = {"Data": "Grüße"}
    assert len(model_trait_errors(params, SEND_EMAIL.input_shape)) == 2
    params["Destination"] = "ann@example.org"
    assert ParamValidator().validate(params, SEND_EMAIL.input_shape).has_errors()


def test_unicode_cases_cover_what_real_shops_send() -> None:
    assert set(UNICODE_MESSAGES) >= FIXED_ON_MAIN


# -- SigV4: ours against botocore's SigV4Auth on identical requests -----------------------------


@dataclass(frozen=True)
class SigningCase:
    id: str
    method: str = "POST"
    host: str = "email.eu-west-1.amazonaws.com"
    path: str = "/v2/email/outbound-emails"
    query: tuple[tuple[str, str], ...] = ()
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "application/json"),)
    body: bytes = b""
    region: str = "eu-west-1"
    service: str = "ses"
    secret: str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
    token: str | None = None
    when: datetime = WHEN


_SES_BODY = json.dumps(
    {"FromEmailAddress": "news@mail.shop.example", "Content": {"Simple": {}}}
).encode()

SIGNING_CASES = [
    SigningCase("ses-send-email", body=_SES_BODY),
    SigningCase("ses-empty-body"),
    SigningCase("ses-unicode-json-body", body='{"Subject":"Grüße 🛒"}'.encode()),
    SigningCase("ses-session-token", body=_SES_BODY, token="FQoGZXIvYXdzEXAMPLE//token+/="),
    SigningCase("ses-us-east-1", host="email.us-east-1.amazonaws.com", region="us-east-1"),
    SigningCase(
        "ses-ap-southeast-2", host="email.ap-southeast-2.amazonaws.com", region="ap-southeast-2"
    ),
    SigningCase("ses-china", host="email.cn-north-1.amazonaws.com.cn", region="cn-north-1"),
    SigningCase("ses-port", host="localhost:4566", region="us-east-1"),
    SigningCase("secret-with-slash-plus", secret="a/b+c/d+e=="),
    SigningCase("midnight", when=datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)),
    SigningCase("leap-day", when=datetime(2028, 2, 29, 0, 0, 0, tzinfo=UTC)),
    SigningCase("get-account", method="GET", path="/v2/email/account", headers=()),
    SigningCase("get-root", method="GET", path="/", headers=()),
    SigningCase(
        "put",
        method="PUT",
        path="/v2/email/configuration-sets/remarketing/sending",
        body=b'{"SendingEnabled":false}',
    ),
    SigningCase(
        "delete",
        method="DELETE",
        path="/v2/email/suppression/addresses/ann%40example.org",
        headers=(),
    ),
    SigningCase(
        "path-percent-encoded",
        method="GET",
        path="/v2/email/identities/m%C3%BCller.example",
        headers=(),
    ),
    SigningCase("path-unicode-encoded", method="GET", path="/%E1%88%B4", headers=()),
    SigningCase("path-unreserved", method="GET", path="/-_.~abcXYZ019", headers=()),
    SigningCase("path-space-encoded", method="GET", path="/a%20b", headers=()),
    SigningCase("query-one", method="GET", query=(("PageSize", "10"),), headers=()),
    SigningCase(
        "query-order", method="GET", query=(("b", "2"), ("a", "1"), ("C", "3")), headers=()
    ),
    SigningCase("query-empty-value", method="GET", query=(("NextToken", ""),), headers=()),
    SigningCase(
        "query-reserved",
        method="GET",
        query=(("Filter", "a=b&c"), ("x", "/?#[]@!$'()*,;")),
        headers=(),
    ),
    SigningCase("query-space", method="GET", query=(("q", "a b"),), headers=()),
    SigningCase("query-unicode", method="GET", query=(("name", "Müller ሴ"),), headers=()),
    SigningCase("query-unreserved", method="GET", query=(("-_.~", "-_.~"),), headers=()),
    SigningCase(
        "query-same-key-sorted-by-value", method="GET", query=(("k", "b"), ("k", "a")), headers=()
    ),
    SigningCase("header-spaces-trimmed", headers=(("X-Custom", "  a   b  c "),)),
    SigningCase(
        "header-case", headers=(("X-CUSTOM-Header", "Value"), ("Content-Type", "application/json"))
    ),
    SigningCase("header-sort", headers=(("Zeta", "1"), ("alpha", "2"), ("Mid", "3"))),
    SigningCase(
        "form-body",
        body=b"Action=SendEmail&Version=2010-12-01",
        headers=(("Content-Type", "application/x-www-form-urlencoded"),),
    ),
    SigningCase(
        "other-service",
        host="sns.eu-west-1.amazonaws.com",
        service="sns",
        path="/",
        body=b"Action=ListTopics",
        headers=(("Content-Type", "application/x-www-form-urlencoded"),),
    ),
    SigningCase("large-body", body=b"x" * 1_000_000),
    SigningCase("binary-body", body=bytes(range(256))),
]


def _query_string(pairs: tuple[tuple[str, str], ...]) -> str:
    return urlencode(pairs, quote_via=quote, safe="-_.~")


def ours(case: SigningCase) -> str:
    query = _query_string(case.query)
    url = f"https://{case.host}{case.path}" + (f"?{query}" if query else "")
    signed = sigv4_sign(
        method=case.method,
        url=url,
        headers=dict(case.headers),
        body=case.body,
        credentials=AwsCredentials("AKIDEXAMPLE", case.secret, case.token),
        region=case.region,
        service=case.service,
        when=case.when,
    )
    return signed["Authorization"]


def botocores(case: SigningCase, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(
        botocore.auth, "get_current_datetime", lambda *a, **k: case.when.replace(tzinfo=None)
    )
    request = AWSRequest(
        method=case.method,
        url=f"https://{case.host}{case.path}",
        params=list(case.query),
        data=case.body,
        headers={**dict(case.headers), "Host": case.host},
    )
    credentials = Credentials("AKIDEXAMPLE", case.secret, case.token)
    botocore.auth.SigV4Auth(credentials, case.service, case.region).add_auth(request)
    authorization: str = request.headers["Authorization"]
    return authorization


@pytest.mark.parametrize("case", SIGNING_CASES, ids=[c.id for c in SIGNING_CASES])
def test_sigv4_matches_botocore(case: SigningCase, monkeypatch: pytest.MonkeyPatch) -> None:
    assert ours(case) == botocores(case, monkeypatch)


def test_a_different_request_signs_differently() -> None:
    """The comparison can fail: one byte of body changes our signature."""
    base = SIGNING_CASES[0]
    changed = SigningCase("changed", body=base.body + b" ")
    assert ours(base) != ours(changed)


def test_the_adapter_signs_what_botocore_signs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The request the adapter sends, re-signed by botocore: the same Authorization."""
    request = sent_request(ALL_MESSAGES["full"])
    case = SigningCase(
        "adapter",
        host=request.url.host,
        path=request.url.path,
        headers=(("Content-Type", request.headers["content-type"]),),
        body=request.content,
        secret=CREDENTIALS.secret_access_key,
    )
    assert request.headers["Authorization"] == botocores(case, monkeypatch)


# -- the AWS Signature Version 4 test suite ----------------------------------------------------

SUITE = VENDOR / "aws-sig-v4-test-suite"
SUITE_WHEN = datetime(2015, 8, 30, 12, 36, tzinfo=UTC)
SUITE_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SUITE_TOKEN = (
    "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpS"
    "PfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYw"
    "T7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKml"
    "zm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA=="
)
# Paths with dot segments or repeated slashes: the suite expects them normalised
# first. Our signer signs the path it is given; every path SES uses is a fixed, clean one.
NOT_NORMALISED = {
    "normalize-path/get-relative",
    "normalize-path/get-relative-relative",
    "normalize-path/get-slash",
    "normalize-path/get-slash-dot-slash",
    "normalize-path/get-slash-pointless-dot",
    "normalize-path/get-slashes",
}


@dataclass(frozen=True)
class RawRequest:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes


def parse_raw_request(text: str) -> RawRequest:
    """A ``.req`` file: request line, headers (a line starting with spaces continues the one
    before), a blank line, the body."""
    head, _, body = text.partition("\n\n")
    lines = head.split("\n")
    method, rest = lines[0].split(" ", 1)
    target = rest.rsplit(" ", 1)[0]
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line.strip():
            continue
        if line.startswith((" ", "\t")) and headers:
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {line.strip()}")
        else:
            name, _, value = line.partition(":")
            headers.append((name, value))
    return RawRequest(method, target, headers, body.encode("utf-8"))


def _suite_cases() -> list[Any]:
    cases = []
    for req in sorted(SUITE.rglob("*.req")):
        name = req.parent.relative_to(SUITE).as_posix()
        marks = []
        if name in NOT_NORMALISED:
            marks.append(
                pytest.mark.xfail(strict=True, reason="the signer does not normalise paths")
            )
        cases.append(pytest.param(req, marks=marks, id=name))
    return cases


@pytest.mark.parametrize("req", _suite_cases())
def test_sigv4_matches_the_aws_test_suite(req: Path) -> None:
    raw = parse_raw_request(req.read_text(encoding="utf-8"))
    expected = req.with_suffix(".authz").read_text(encoding="utf-8").strip()
    host = ""
    # As botocore's own runner does: the session token of a case is the one its canonical
    # request signs (get-vanilla-with-session-token has none in its .req).
    creq = req.with_suffix(".creq").read_text(encoding="utf-8")
    found = re.search(r"^x-amz-security-token:(.*)$", creq, re.MULTILINE)
    token = found.group(1) if found else None
    merged: dict[str, str] = {}
    for name, value in raw.headers:
        lower = name.lower()
        if lower == "host":
            host = value
        elif lower == "x-amz-date":
            assert value == "20150830T123600Z"  # the signer writes it from `when`
        elif lower == "x-amz-security-token":
            assert value == SUITE_TOKEN  # the signer adds it from the credentials
        else:
            # Repeated headers are signed as one, values joined by commas in order.
            key = next((k for k in merged if k.lower() == lower), name)
            merged[key] = f"{merged[key]},{value}" if key in merged else value
    # post-sts-header-after adds the token after signing: its canonical request has none.
    credentials = AwsCredentials("AKIDEXAMPLE", SUITE_SECRET, token)
    signed = sigv4_sign(
        method=raw.method,
        # The request line's path as the suite writes it (a raw "ሴ" stands for its UTF-8).
        url=f"https://{host}{raw.target}",
        headers=merged,
        body=raw.body,
        credentials=credentials,
        region="us-east-1",
        service="service",
        when=SUITE_WHEN,
    )
    assert signed["Authorization"] == expected


def test_the_suite_is_all_there() -> None:
    assert len(_suite_cases()) == 34
    assert (SUITE / "LICENSE").exists() and (SUITE / "NOTICE").exists()


# -- answers -----------------------------------------------------------------------------------


def _send(response: httpx.Response, count: int = 1) -> list[SendResult]:
    provider = SesProvider(
        CREDENTIALS,
        "eu-west-1",
        transport=httpx.MockTransport(lambda r: response),
        concurrency=1,
        clock=lambda: WHEN,
    )
    return provider.send_many([ALL_MESSAGES["full"]] * count)


def _model_error(name: str, message: str) -> httpx.Response:
    """The error as SES answers it (rest-json): the status the model gives the shape, its name
    in ``x-amzn-ErrorType`` and ``{"message"}`` in the body."""
    status = MODEL.shape_for(name).metadata["error"]["httpStatusCode"]
    return httpx.Response(
        status,
        json={"message": message},
        headers={"x-amzn-ErrorType": f"{name}:http://internal.amazon.com/coral/com.amazon.sesv2/"},
    )


def test_every_error_the_model_declares_is_mapped_here() -> None:
    declared = {shape.name for shape in SEND_EMAIL.error_shapes}
    assert declared == set(RETRIED) | set(FAILED) | set(ACCOUNT)


def test_success_matches_the_model_output() -> None:
    body = {"MessageId": "010201234567890a-abcdef01-2345-6789-abcd-ef0123456789-000000"}
    assert not ParamValidator().validate(body, SEND_EMAIL.output_shape).has_errors()
    assert _send(httpx.Response(200, json=body)) == [Sent(body["MessageId"])]


RETRIED = {"TooManyRequestsException": "Maximum sending rate exceeded."}
FAILED = {
    "MessageRejected": "Email address is not verified. The following identities failed the "
    "check in region EU-WEST-1: ann@example.org",
    "BadRequestException": "Invalid tag value.",
    "LimitExceededException": "Too many headers.",
}
ACCOUNT = {
    "AccountSuspendedException": "Your account has been suspended.",
    "SendingPausedException": "Sending is paused for this account.",
    "MailFromDomainNotVerifiedException": "The MAIL FROM domain is not verified.",
    "NotFoundException": "Configuration set <remarketing> does not exist.",
}


@pytest.mark.parametrize("name", sorted(RETRIED))
def test_throttling_is_retried(name: str) -> None:
    [result] = _send(_model_error(name, RETRIED[name]))
    assert isinstance(result, Transient)


@pytest.mark.parametrize("name", sorted(FAILED))
def test_request_errors_fail_the_message_without_suppressing(name: str) -> None:
    # MessageRejected "Email address is not verified" is SES's invalid-address answer (sandbox):
    # the recipient is not bad, the account may not send to it yet.
    [result] = _send(_model_error(name, FAILED[name]))
    assert isinstance(result, Permanent) and not result.hard_bounce


@pytest.mark.parametrize("name", sorted(ACCOUNT))
def test_account_errors_suppress_no_one(name: str) -> None:
    [result] = _send(_model_error(name, ACCOUNT[name]))
    assert not (isinstance(result, Permanent) and result.hard_bounce)


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_are_retried(status: int) -> None:
    response = httpx.Response(
        status,
        json={"message": "Internal failure."},
        headers={"x-amzn-ErrorType": "InternalFailure:http://internal.amazon.com/"},
    )
    [result] = _send(response)
    assert isinstance(result, Transient)


def test_one_rejected_message_leaves_the_others_sent() -> None:
    """SES sends one request per message: a rejection fails only its own message."""
    answers = iter(
        [
            httpx.Response(200, json={"MessageId": "id-1"}),
            _model_error("MessageRejected", "Email address is not verified."),
            httpx.Response(200, json={"MessageId": "id-3"}),
        ]
    )
    provider = SesProvider(
        CREDENTIALS,
        "eu-west-1",
        transport=httpx.MockTransport(lambda r: next(answers)),
        concurrency=1,
        clock=lambda: WHEN,
    )
    results = provider.send_many(
        [ALL_MESSAGES["full"], ALL_MESSAGES["text-only"], ALL_MESSAGES["html-only"]]
    )
    assert results[0] == Sent("id-1")
    assert isinstance(results[1], Permanent) and not results[1].hard_bounce
    assert results[2] == Sent("id-3")
