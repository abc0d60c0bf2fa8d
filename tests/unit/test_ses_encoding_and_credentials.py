"""SES v2: what the service model allows in a request, and where credentials come from.

The model is botocore's own ``sesv2`` service description (the one every AWS SDK for Python
validates against), loaded from the installed botocore, not a copy of ours. Credentials come
from botocore's default chain: tests point it at environment variables, a shared credentials
file and a local instance-metadata (IMDSv2) server, the way an EC2 host serves a role.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.header import decode_header, make_header
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import botocore.session
import httpx
import pytest
from botocore.loaders import Loader

from remarket_mailer.delivery.base import OutboundMessage, Sent
from remarket_mailer.delivery.message import phrase
from remarket_mailer.delivery.providers.aws import NoCredentialsError, credential_chain
from remarket_mailer.delivery.providers.esp import esp_provider_from_url
from remarket_mailer.delivery.providers.ses import SesProvider
from remarket_mailer.errors import ConfigError

_MODEL = Loader().load_service_model("sesv2", "service-2")
_SHAPES: dict[str, Any] = _MODEL["shapes"]


def _pattern(shape: str) -> re.Pattern[str]:
    return re.compile(_SHAPES[shape]["pattern"])


def _message(**changes: Any) -> OutboundMessage:
    fields: dict[str, Any] = {
        "delivery_id": 5,
        "to_addr": "Jürgen <j@example.org>",
        "from_addr": "Shop <news@mail.shop.example>",
        "subject": "Sie haben etwas vergessen, Jürgen – 10 % Rabatt",
        "html": "<p>Hallo</p>",
        "text": "Hallo",
        "message_id": "5.abc@mail.shop.example",
        "headers": {
            "List-Id": f"{phrase('Müller & Söhne')} <win_back.mail.shop.example>",
            "X-Campaign": "Frühling – Sale",
        },
    }
    fields.update(changes)
    return OutboundMessage(**fields)


def _sent_body(message: OutboundMessage) -> dict[str, Any]:
    requests: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200, json={"MessageId": "m-1"})

    from remarket_mailer.delivery.providers.aws import AwsCredentials

    provider = SesProvider(
        AwsCredentials("AKIDTEST", "secret"), "eu-west-1", transport=httpx.MockTransport(answer)
    )
    assert provider.send_many([message]) == [Sent("m-1")]
    body: dict[str, Any] = json.loads(requests[0].content)
    return body


def test_the_model_says_subject_needs_a_charset_and_header_values_are_printable_ascii() -> None:
    # The facts the encoding relies on, read from the model itself: if AWS changes them,
    # this test says so.
    assert "Charset" in _SHAPES["Content"]["members"]
    assert _SHAPES["MessageHeaderValue"]["pattern"] == "[ -~]*"


def test_non_ascii_subject_is_sent_with_charset_utf8() -> None:
    subject = _sent_body(_message())["Content"]["Simple"]["Subject"]
    assert subject == {
        "Data": "Sie haben etwas vergessen, Jürgen – 10 % Rabatt",
        "Charset": "UTF-8",
    }


def test_header_values_match_the_model_pattern_and_decode_back() -> None:
    headers = _sent_body(_message())["Content"]["Simple"]["Headers"]
    value_pattern = _pattern("MessageHeaderValue")
    name_pattern = _pattern("MessageHeaderName")
    decoded = {}
    for item in headers:
        assert name_pattern.fullmatch(item["Name"]), item
        assert value_pattern.fullmatch(item["Value"]), item
        decoded[item["Name"]] = str(make_header(decode_header(item["Value"])))
    assert decoded["X-Campaign"] == "Frühling – Sale"
    assert decoded["List-Id"] == "Müller & Söhne <win_back.mail.shop.example>"


def test_list_id_keeps_its_id_readable() -> None:
    # RFC 2919: List-Id: [phrase] "<" list-id ">": only the phrase may be encoded.
    value = f"{phrase('Müller & Söhne')} <win_back.mail.shop.example>"
    assert value.isascii()
    assert value.endswith(" <win_back.mail.shop.example>")
    words = value.rsplit(" <", 1)[0]
    assert str(make_header(decode_header(words))) == "Müller & Söhne"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Abandoned cart", "Abandoned cart"),
        ("Win-back & more", "Win-back & more"),
        ('Say "hi", friend', '"Say \\"hi\\", friend"'),
        ("Sale: 10%", '"Sale: 10%"'),
        ("=?utf-8?b?QQ==?=", '"=?utf-8?b?QQ==?="'),
    ],
)
def test_ascii_phrases_are_atoms_or_quoted(name: str, expected: str) -> None:
    assert phrase(name) == expected


# -- the credential chain ----------------------------------------------------------------


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An environment where botocore finds nothing unless a test adds it: no real ~/.aws,
    no AWS_* variables, no instance metadata."""
    for name in list(__import__("os").environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return tmp_path


def _signed_key_id(url: str) -> str:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"MessageId": "m"})

    provider = esp_provider_from_url(url, transport=httpx.MockTransport(answer))
    assert provider is not None
    provider.send_many([_message()])
    authorization = seen[0].headers["Authorization"]
    match = re.search(r"Credential=([^/]+)/\d{8}/([^/]+)/ses/", authorization)
    assert match
    token = seen[0].headers.get("X-Amz-Security-Token")
    return f"{match.group(1)}@{match.group(2)}" + (f"+{token}" if token else "")


def test_url_keys_still_win(aws_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "envsecret")
    assert _signed_key_id("ses://AKIDURL:s3cret@email.eu-west-1.amazonaws.com") == (
        "AKIDURL@eu-west-1"
    )


def test_environment_credentials_and_region(aws_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "envsecret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "envtoken")
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    assert _signed_key_id("ses://email.eu-central-1.amazonaws.com") == (
        "AKIDFROMENV@eu-central-1+envtoken"
    )
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-north-1")
    monkeypatch.delenv("AWS_REGION")
    provider = esp_provider_from_url("ses://")
    assert isinstance(provider, SesProvider) and provider.region == "eu-north-1"


def test_shared_credentials_file_with_a_profile(
    aws_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (aws_env / "credentials").write_text(
        "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = d\n"
        "[mail]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = p\n"
    )
    (aws_env / "config").write_text("[profile mail]\nregion = ap-southeast-2\n")
    assert _signed_key_id("ses://email.eu-west-1.amazonaws.com") == "AKIDDEFAULT@eu-west-1"
    monkeypatch.setenv("AWS_PROFILE", "mail")
    assert _signed_key_id("ses://") == "AKIDPROFILE@ap-southeast-2"


def test_credential_process_is_refreshed_before_it_expires(
    aws_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # credential_process gives temporary keys with an expiry; botocore runs it again when
    # they are about to expire: each request is signed with the current keys.
    counter = aws_env / "count"
    counter.write_text("0")
    script = aws_env / "creds.py"
    script.write_text(
        "import json, pathlib, datetime\n"
        f"p = pathlib.Path({str(counter)!r}); n = int(p.read_text()) + 1; p.write_text(str(n))\n"
        "exp = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=60)\n"
        "print(json.dumps({'Version': 1, 'AccessKeyId': f'AKIDPROC{n}', "
        "'SecretAccessKey': 's', 'SessionToken': f't{n}', 'Expiration': exp.isoformat()}))\n"
    )
    import sys

    (aws_env / "config").write_text(
        f"[default]\nregion = us-west-2\ncredential_process = {sys.executable} {script}\n"
    )
    source, region = credential_chain(session=botocore.session.Session())
    assert region == "us-west-2"
    first = source()
    # 60 s left is inside botocore's mandatory refresh window (10 min): a new call refreshes.
    second = source()
    assert first.access_key_id.startswith("AKIDPROC")
    assert second.access_key_id != first.access_key_id
    assert second.session_token == "t" + second.access_key_id.removeprefix("AKIDPROC")


class _Imds(BaseHTTPRequestHandler):
    """The IMDSv2 answers botocore's InstanceMetadataFetcher asks for (token, role, keys)."""

    expiry = ""

    def do_PUT(self) -> None:  # noqa: N802 - http.server's naming
        assert self.path == "/latest/api/token"
        self._answer(b"imds-token")

    def do_GET(self) -> None:  # noqa: N802
        if self.headers.get("X-aws-ec2-metadata-token") != "imds-token":
            self.send_response(401)
            self.end_headers()
            return
        if self.path == "/latest/meta-data/iam/security-credentials/":
            self._answer(b"mail-role")
        elif self.path == "/latest/meta-data/iam/security-credentials/mail-role":
            self._answer(
                json.dumps(
                    {
                        "Code": "Success",
                        "AccessKeyId": "AKIDINSTANCE",
                        "SecretAccessKey": "instance-secret",
                        "Token": "instance-token",
                        "Expiration": self.expiry,
                    }
                ).encode()
            )
        else:
            self.send_response(404)
            self.end_headers()

    def _answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@pytest.fixture
def imds() -> Iterator[str]:
    _Imds.expiry = (datetime.now(UTC) + timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M:%SZ")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Imds)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_instance_role_from_instance_metadata(
    aws_env: Path, monkeypatch: pytest.MonkeyPatch, imds: str
) -> None:
    monkeypatch.delenv("AWS_EC2_METADATA_DISABLED")
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds)
    assert _signed_key_id("ses://email.us-east-1.amazonaws.com") == (
        "AKIDINSTANCE@us-east-1+instance-token"
    )


def test_no_credentials_anywhere_is_one_clear_config_error(aws_env: Path) -> None:
    with pytest.raises(ConfigError, match="no AWS credentials") as caught:
        esp_provider_from_url("ses://email.eu-west-1.amazonaws.com")
    assert str(caught.value).startswith("REMARKET_PROVIDER_URL: ")
    with pytest.raises(NoCredentialsError):
        credential_chain(session=botocore.session.Session())


def test_half_a_key_pair_is_refused(aws_env: Path) -> None:
    with pytest.raises(ConfigError, match="both ACCESS_KEY_ID:SECRET_ACCESS_KEY"):
        esp_provider_from_url("ses://AKIDONLY@email.eu-west-1.amazonaws.com")


def test_no_region_anywhere_is_refused(aws_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "envsecret")
    with pytest.raises(ConfigError, match="needs a region"):
        esp_provider_from_url("ses://")
