# Vendored from postmark-python 0.4.0 (PyPI wheel), MIT, see LICENSE beside this file.
# Kept: TrackLinksOption from postmark/models/outbound/enums.py, and Attachment, Header,
# SendResponse and Email from postmark/models/outbound/schemas.py, unchanged. Only the import
# lines were changed (the package's relative imports replaced by the two names used).
from datetime import datetime
from enum import Enum

from pydantic import BaseModel, ConfigDict, Field


class TrackLinksOption(str, Enum):
    NONE = "None"
    HTML_AND_TEXT = "HtmlAndText"
    HTML_ONLY = "HtmlOnly"
    TEXT_ONLY = "TextOnly"


class Attachment(BaseModel):
    name: str = Field(alias="Name")
    content: str = Field(alias="Content")
    content_type: str = Field(alias="ContentType")
    content_id: str | None = Field(None, alias="ContentID")
    content_length: int | None = Field(None, alias="ContentLength")

    model_config = ConfigDict(populate_by_name=True)


class Header(BaseModel):
    name: str = Field(alias="Name")
    value: str = Field(alias="Value")

    model_config = ConfigDict(populate_by_name=True)


class SendResponse(BaseModel):
    to: str = Field(alias="To")
    submitted_at: datetime = Field(alias="SubmittedAt")
    message_id: str = Field(alias="MessageID")
    error_code: int = Field(alias="ErrorCode")
    message: str = Field(alias="Message")

    model_config = ConfigDict(populate_by_name=True)

    @property
    def success(self) -> bool:
        """Return True if the message was accepted (error_code == 0)."""
        return self.error_code == 0


class Email(BaseModel):
    sender: str = Field(alias="From")
    to: str = Field(alias="To")
    cc: str | None = Field(None, alias="Cc")
    bcc: str | None = Field(None, alias="Bcc")
    subject: str | None = Field(None, alias="Subject")
    tag: str | None = Field(None, alias="Tag")
    html_body: str | None = Field(None, alias="HtmlBody")
    text_body: str | None = Field(None, alias="TextBody")
    reply_to: str | None = Field(None, alias="ReplyTo")
    headers: list[Header] = Field(default_factory=list, alias="Headers")
    track_opens: bool | None = Field(None, alias="TrackOpens")
    track_links: TrackLinksOption | None = Field(None, alias="TrackLinks")
    attachments: list[Attachment] = Field(default_factory=list, alias="Attachments")
    metadata: dict[str, str] = Field(default_factory=dict, alias="Metadata")
    message_stream: str | None = Field(None, alias="MessageStream")

    model_config = ConfigDict(populate_by_name=True)


