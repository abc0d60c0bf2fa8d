import pytest

from remarket_mailer.delivery.base import Permanent, Transient
from remarket_mailer.delivery.providers.smtp import SmtpSettings, classify_smtp_error
from remarket_mailer.errors import ConfigError, ValidationError
from remarket_mailer.tracking.links import LinkSigner


def test_unsubscribe_token_roundtrip_without_email() -> None:
    signer = LinkSigner("secret-secret-secret", "https://mail.shop.example/")
    token = signer.unsubscribe_token(17, "marketing", 99)
    assert "@" not in token
    parsed = signer.read_unsubscribe_token(token)
    assert (parsed.contact_id, parsed.topic, parsed.delivery_id) == (17, "marketing", 99)
    assert signer.unsubscribe_url(token) == f"https://mail.shop.example/u/{token}"


def test_tampered_or_foreign_token_refused() -> None:
    signer = LinkSigner("secret-secret-secret", "https://x")
    token = signer.unsubscribe_token(17, "marketing")
    with pytest.raises(ValidationError, match="not valid"):
        signer.read_unsubscribe_token(token[:-2] + ("AA" if token[-2:] != "AA" else "BB"))
    other = LinkSigner("another-secret-entirely", "https://x")
    with pytest.raises(ValidationError):
        other.read_unsubscribe_token(token)


def test_smtp_error_classes() -> None:
    assert isinstance(classify_smtp_error(451, "4.3.0 try later"), Transient)
    assert isinstance(classify_smtp_error(421, "closing"), Transient)
    hard = classify_smtp_error(550, "5.1.1 user unknown")
    assert isinstance(hard, Permanent) and hard.hard_bounce
    policy = classify_smtp_error(550, "5.7.26 unauthenticated")
    assert isinstance(policy, Permanent) and not policy.hard_bounce


def test_smtp_url() -> None:
    s = SmtpSettings.from_url("smtp://us%40er:p%3Ass@mail.example:2525?starttls=true")
    assert (s.host, s.port, s.username, s.password, s.starttls) == (
        "mail.example",
        2525,
        "us@er",
        "p:ss",
        True,
    )
    assert SmtpSettings.from_url("smtps://mail.example").port == 465
    with pytest.raises(ConfigError):
        SmtpSettings.from_url("http://mail.example")


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("smtp://mail.example?starttls=yes", "starttls must be true or false, got 'yes'"),
        ("smtp://mail.example?starttls=on", "starttls must be true or false, got 'on'"),
        ("smtp://mail.example?verify=no", "verify must be true or false, got 'no'"),
        ("smtp://mail.example?tls=true", "does not take tls (it takes: starttls, timeout"),
        ("smtp://mail.example?timeout=soon", "timeout must be a number of seconds"),
        ("smtp://mail.example?timeout=0", "timeout must be a number of seconds"),
        ("smtps://mail.example?starttls=true", "smtps:// is TLS from the first byte"),
        ("smtp://mail.example:port", "bad port"),
    ],
)
def test_smtp_url_options_a_server_would_not_get_are_refused(url: str, said: str) -> None:
    """A typo in an option used to be read as "off" (plain text) or ignored."""
    with pytest.raises(ConfigError) as info:
        SmtpSettings.from_url(url)
    assert str(info.value).startswith("REMARKET_PROVIDER_URL: ")
    assert said in str(info.value)


def test_smtp_url_options_read_as_documented() -> None:
    s = SmtpSettings.from_url("smtp://mail.example?starttls=TRUE&timeout=2.5&verify=false")
    assert (s.starttls, s.timeout, s.verify_tls) == (True, 2.5, False)
    plain = SmtpSettings.from_url("smtp://mail.example")
    assert (plain.starttls, plain.timeout, plain.verify_tls, plain.port) == (False, 30.0, True, 587)


def test_tokens_are_what_itsdangerous_makes_and_compressed_ones_still_load() -> None:
    """Links already in inboxes must keep working: the signer skips zlib but writes the same
    bytes, and reads the compressed form itsdangerous would make for a longer payload."""
    from itsdangerous import URLSafeTimedSerializer

    reference = URLSafeTimedSerializer("k" * 32, salt="remarket.unsubscribe")
    signer = LinkSigner("k" * 32, "https://mail.shop.example")
    token = signer.unsubscribe_token(12345, "marketing", 987654)
    assert reference.loads(token) == [12345, "marketing", 987654]
    assert token.split(".")[0] == reference.dumps([12345, "marketing", 987654]).split(".")[0]
    compressed = reference.dumps([7, "marketing" * 20, None])
    assert compressed.startswith(".")
    assert signer.read_unsubscribe_token(compressed).contact_id == 7


def test_a_token_stamped_with_a_moment_is_the_same_every_time() -> None:
    """Sending stamps a delivery's token with its planned time: re-rendering the delivery
    (a replay under an idempotency key) gives the same bytes, and itsdangerous reads the
    stamp back as the token's time."""
    from datetime import UTC, datetime

    from itsdangerous import TimestampSigner, URLSafeTimedSerializer

    at = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
    signer = LinkSigner("k" * 32, "https://mail.shop.example")
    first = signer.unsubscribe_token(5, "marketing", 77, at=at)
    assert first == signer.unsubscribe_token(5, "marketing", 77, at=at)
    assert first != signer.unsubscribe_token(5, "marketing", 78, at=at)
    reference = URLSafeTimedSerializer("k" * 32, salt="remarket.unsubscribe")
    payload, stamped = reference.loads(first, return_timestamp=True)
    assert payload == [5, "marketing", 77] and stamped == at
    assert signer.read_unsubscribe_token(first).delivery_id == 77

    class SignsAt(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(at.timestamp())

    # Byte for byte what itsdangerous itself signs at that moment (tokens already sent).
    plain = SignsAt("k" * 32, salt="remarket.unsubscribe")
    assert first == plain.sign(reference.dump_payload([5, "marketing", 77])).decode()
