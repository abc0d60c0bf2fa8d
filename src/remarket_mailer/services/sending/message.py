"""Step 2 of a batch, no database: render each email (compiled templates) and build its
message with the compliance headers (List-Unsubscribe one-click, List-Id, Feedback-ID)."""

from __future__ import annotations

from email.utils import formataddr
from urllib.parse import quote

from remarket_mailer.db.contacts import ContactFacts
from remarket_mailer.delivery.base import OutboundMessage, Permanent, SendResult
from remarket_mailer.delivery.message import clean_header, make_message_id, phrase, sender_domain
from remarket_mailer.domain.clock import Clock
from remarket_mailer.errors import TemplateError
from remarket_mailer.rendering.renderer import Renderer
from remarket_mailer.services.sending.config import SendConfig
from remarket_mailer.services.sending.prepare import Ready
from remarket_mailer.services.sending.report import log
from remarket_mailer.tracking.links import TrackingLinks


class MessageBuilder:
    def __init__(
        self, renderer: Renderer, clock: Clock, config: SendConfig, tracking: TrackingLinks
    ) -> None:
        self.renderer = renderer
        self.clock = clock
        self.config = config
        self.tracking = tracking

    def render(self, ready: list[Ready]) -> tuple[list[OutboundMessage], dict[int, SendResult]]:
        """The messages of the emails that rendered, and a Permanent result for each that
        did not (a template that fails fails only its own delivery)."""
        messages: list[OutboundMessage] = []
        failures: dict[int, SendResult] = {}
        for item in ready:
            try:
                email = self.renderer.render(item.delivery.template, item.context)
            except Exception as exc:
                # A template that fails (a filter given None, an undefined name) fails its own
                # delivery with the reason; the rest of the batch goes on.
                if not isinstance(exc, TemplateError):
                    exc = TemplateError(f"{item.delivery.template}: {type(exc).__name__}: {exc}")
                log.error("delivery=%d template failed: %s", item.delivery.id, exc)
                failures[item.delivery.id] = Permanent(f"template: {exc}")
                continue
            item.subject = email.subject
            html = email.html
            if self.config.click_tracking or self.config.open_tracking:
                html = self.tracking.rewrite(
                    html,
                    item.delivery.id,
                    clicks=self.config.click_tracking,
                    opens=self.config.open_tracking,
                )
            messages.append(self.message(item, email.subject, html, email.text))
        return messages, failures

    def message(self, item: Ready, subject: str, html: str, text: str) -> OutboundMessage:
        workflow = item.workflow
        from_addr = workflow.from_email or self.config.from_email
        domain = sender_domain(from_addr)
        token = str(item.context["_token"])
        mailto = self.config.unsubscribe_mailto or f"unsubscribe@{domain}"
        unsubscribe = item.context["links"]["unsubscribe"]
        # The same as quote("unsubscribe " + token), which escapes character by character;
        # the token alone (URL-safe) takes quote's fast path, the space made it walk every byte.
        mail_subject = f"unsubscribe%20{quote(token)}"
        headers = {
            "List-Unsubscribe": f"<{unsubscribe}>, <mailto:{mailto}?subject={mail_subject}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "List-Id": f"{phrase(workflow.name)} <{workflow.id}.{domain}>",
            "Feedback-ID": (
                f"{workflow.id}:{item.step.id}:{workflow.category}:{self.config.feedback_sender_id}"
            ),
        }
        return OutboundMessage(
            delivery_id=item.delivery.id,
            message_id=make_message_id(item.delivery.id, domain, self.config.secret_key),
            from_addr=from_addr,
            to_addr=display_address(item.contact),
            subject=subject,
            html=html,
            text=text,
            reply_to=workflow.reply_to or self.config.reply_to,
            headers=headers,
            tags={
                "delivery_id": str(item.delivery.id),
                "workflow": workflow.id,
                "step": item.step.id,
            },
            date=self.clock.now(),
            send_key=item.delivery.send_key,
        )


def display_address(contact: ContactFacts) -> str:
    """The To value for a contact: its name (from user data, cleaned) and address."""
    assert contact.email is not None
    name = clean_header(" ".join(p for p in (contact.first_name, contact.last_name) if p))
    if not name:
        return contact.email
    if name.isascii():
        return formataddr((name, contact.email))
    # Quoted, not RFC 2047-encoded as formataddr would: the message builder encodes names
    # itself, and must tell a name it encoded from one that only looks encoded ("=?...").
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{quoted}" <{contact.email}>'
