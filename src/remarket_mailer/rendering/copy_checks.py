"""Checks of rendered copy that lint runs on every email it renders: what a reader would see.

Pure functions over the rendered strings, no Jinja or MJML. Each returns a short excerpt of
what is wrong (or None), so the lint line can show it. The heuristics and their limits are
described in docs/templates.md.
"""

from __future__ import annotations

import html as html_lib
import re
import unicodedata

# Template syntax that reached the reader: a Jinja tag of either pass, a gettext placeholder
# that was not filled (a translation whose placeholder differs from the msgid), and a Python
# None printed where a value was missing ({{ contact.first_name }} for a contact without one).
_LEFTOVER = re.compile(r"\{\{|\}\}|\{%|%\}|\{#|#\}|\[%|%\]|\[\[|\]\]|%\([a-z_]+\)s|\bNone\b")
_COMMENT = re.compile(r"<!--.*?-->", re.S)
_INVISIBLE = re.compile(r"<(head|style|script)\b.*?</\1\s*>", re.S | re.I)
_TAG = re.compile(r"<[^>]*>")
_URL = re.compile(r"""\b[a-z][a-z0-9+.-]*://[^\s<>"')\]]+""", re.I)

# Words that promise an offer, per language, as copy writes them: a (discount) code, a
# discount, "something off". Compounds count: Dutch "kortingscode", Norwegian "rabattkode",
# Russian "промокод". Checked only in an email that has no discount. A language without an
# entry is checked with the English words.
OFFER_WORDS: dict[str, re.Pattern[str]] = {
    "en": re.compile(
        r"\b(?:codes?|coupons?|vouchers?|discounts?|something off|off your|off the)\b|%\s*off\b",
        re.I,
    ),
    "nl": re.compile(r"(?:codes?|coupons?|vouchers?)\b|korting", re.I),
    "nb": re.compile(r"(?:koden?|koder|kodene|kuponge?n?)\b|rabatt", re.I),
    "it": re.compile(r"\b(?:codic[ei]|coupon|buon[oi])\b|\bscont[oi]", re.I),
    "ru": re.compile(r"\b(?:промо)?код(?:а|у|ом|е|ы|ов|ам|ами|ах)?\b|купон|скидк", re.I),
    "vi": re.compile(r"\bmã\b|\bcoupon\b|\bvoucher\b|giảm giá", re.I),
}

# In a subject or preheader: what is left around a value that came out empty.
_DANGLING: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r" {2,}"), "has two spaces in a row"),
    (re.compile(r"^\s*[,.:;!?)\]–—-]"), "starts with a punctuation mark"),
    (re.compile(r"[,:;(\[–—-]\s*$"), "ends with a dangling punctuation mark"),
    (re.compile(r"\s[,.:;](?!\.)"), "has a space before a punctuation mark"),
    (re.compile(r"[,:;]\s*[,.:;!?]"), "has two punctuation marks in a row"),
    (re.compile(r"\(\s*\)|\[\s*\]|\"\s*\"|«\s*»"), "has empty brackets or quotes"),
)


def visible_text(html: str, preheader: str = "") -> str:
    """The text a reader sees in an HTML part: no head, styles, comments or tags; entities
    decoded; whitespace collapsed; without the hidden preheader (checked on its own)."""
    body = _INVISIBLE.sub(" ", _COMMENT.sub(" ", html))
    text = " ".join(html_lib.unescape(_TAG.sub(" ", body)).split())
    if preheader:
        text = " ".join(text.replace(preheader, " ", 1).split())
    return text


def markup(html: str) -> str:
    """The HTML without comments (Outlook's ``<!--[if mso]>…<![endif]-->``), head and styles:
    where a leftover template tag in text or an attribute would show."""
    return _INVISIBLE.sub(" ", _COMMENT.sub(" ", html))


def leftover(text: str) -> str | None:
    """An excerpt around template syntax or a printed ``None`` left in ``text``, else None."""
    match = _LEFTOVER.search(text)
    return _excerpt(text, match) if match else None


def dangling(line: str) -> str | None:
    """What is wrong with the punctuation or spacing of a subject or preheader, else None.

    Catches what an empty value leaves behind (``"Hi , we miss you"``, ``"we miss you: "``,
    ``", here is 10 % off"``); a line that reads right passes."""
    for pattern, what in _DANGLING:
        if pattern.search(line):
            return what
    return None


def mentions_offer(text: str, language: str) -> str | None:
    """An excerpt around the first word for a code or a discount in ``text`` in ``language``
    (``nl``, ``pt-BR``: its base language; English words for a language without an entry),
    else None. Links are left out: a URL may contain "code" without promising one."""
    base = language.replace("_", "-").split("-", 1)[0].lower()
    pattern = OFFER_WORDS.get(base, OFFER_WORDS["en"])
    plain = _URL.sub(" ", unicodedata.normalize("NFC", text))
    match = pattern.search(plain)
    return _excerpt(plain, match) if match else None


def _excerpt(text: str, match: re.Match[str], around: int = 30) -> str:
    start = max(0, match.start() - around)
    end = min(len(text), match.end() + around)
    snippet = " ".join(text[start:end].split())
    return ("…" if start else "") + snippet + ("…" if end < len(text) else "")
