"""The email remarket sent (captured at the sink), taken apart for the peers to send."""

from __future__ import annotations

import argparse
import email
import email.policy
from pathlib import Path


def parts(message_file: Path) -> tuple[str, str, str]:
    """(subject, text body, HTML body) of the captured email."""
    message = email.message_from_string(message_file.read_text(), policy=email.policy.default)
    text = html = ""
    for part in message.walk():
        kind = part.get_content_type()
        if kind == "text/plain" and not text:
            text = part.get_content()
        elif kind == "text/html" and not html:
            html = part.get_content()
    return str(message["Subject"]), text, html


def arguments(extra: str, default: int) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smtp", type=int, required=True, help="the sink's port")
    parser.add_argument("--message", type=Path, required=True, help="the email to copy")
    parser.add_argument("--emails", type=int, default=1000)
    parser.add_argument(f"--{extra}", type=int, default=default)
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/8")
    return parser.parse_args()
