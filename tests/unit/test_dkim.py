import base64
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from remarket_mailer.delivery.base import OutboundMessage
from remarket_mailer.delivery.dkim import DkimSigner
from remarket_mailer.delivery.providers.file import FileProvider
from remarket_mailer.errors import ConfigError


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def dns_record(key: rsa.RSAPrivateKey) -> bytes:
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


def test_file_provider_signs_and_the_signature_verifies(
    key: rsa.RSAPrivateKey, tmp_path: Path
) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    signer = DkimSigner("mail2026", "shop.example", pem)
    message = OutboundMessage(
        delivery_id=7,
        message_id="7.abc@shop.example",
        from_addr="Shop <news@shop.example>",
        to_addr="ann@example.org",
        subject="Your cart",
        html="<p>Hi</p>",
        text="Hi",
        headers={
            "List-Unsubscribe": "<https://mail.shop.example/u/t>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    )
    FileProvider(tmp_path, signer).send_many([message])
    data = (tmp_path / "00000007.eml").read_bytes()
    assert data.startswith(b"DKIM-Signature:")
    header = data.split(b"\r\n\r\n")[0].replace(b"\r\n ", b" ").lower()
    assert b"list-unsubscribe:list-unsubscribe-post" in header.replace(b" ", b"")

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"mail2026._domainkey.shop.example."
        return dns_record(key)

    assert dkim.verify(data, dnsfunc=dns)
    tampered = data.replace(b"Your cart", b"Free money")
    assert not dkim.verify(tampered, dnsfunc=dns)


def test_not_a_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="DKIM"):
        DkimSigner("s", "d", b"not a key")
