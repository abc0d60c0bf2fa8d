"""SQLAlchemy models: the database is the source of truth for every email.

The same models run on SQLite (the embedded default) and PostgreSQL (production). Times are
stored in UTC and always come back timezone-aware.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments an INTEGER PRIMARY KEY, PostgreSQL wants BIGINT for big tables.
Id = BigInteger().with_variant(Integer(), "sqlite")
Money = Numeric(14, 2)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC that always loads timezone-aware (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), Decimal: Money}


class Contact(Base):
    __tablename__ = "contacts"
    # Ids go into unsubscribe tokens: SQLite must never hand an erased contact's id out again.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    external_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    email: Mapped[str | None] = mapped_column(String(320), unique=True)
    first_name: Mapped[str | None] = mapped_column(String(255))
    last_name: Mapped[str | None] = mapped_column(String(255))
    locale: Mapped[str | None] = mapped_column(String(35))
    timezone: Mapped[str | None] = mapped_column(String(64))
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    first_order_at: Mapped[datetime | None]
    profile_updated_at: Mapped[datetime | None]
    """occurred_at of the newest profile event applied: older ones never overwrite its fields."""
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Consent(Base):
    """One consent record per change (GDPR Art. 7(1): be able to show who agreed, when, how)."""

    __tablename__ = "consents"
    __table_args__ = (Index("ix_consents_contact_topic", "contact_id", "topic", "occurred_at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    topic: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # granted | withdrawn
    source: Mapped[str | None] = mapped_column(String(255))
    evidence: Mapped[str | None] = mapped_column(Text)
    occurred_at: Mapped[datetime]
    recorded_at: Mapped[datetime]


class Suppression(Base):
    """An address that must never be emailed again, kept by hash so erasure keeps it."""

    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    email_hash: Mapped[str] = mapped_column(String(64), unique=True)
    reason: Mapped[str] = mapped_column(
        String(32)
    )  # unsubscribed|hard_bounce|complaint|manual|erased
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]


class Event(Base):
    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(255), unique=True)
    type: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[datetime]
    received_at: Mapped[datetime]
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    body_hash: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]]


class Cart(Base):
    __tablename__ = "carts"

    cart_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    currency: Mapped[str | None] = mapped_column(String(3))
    total: Mapped[Decimal | None]
    items: Mapped[dict[str, Any]] = mapped_column(default=dict)
    checkout_url: Mapped[str | None] = mapped_column(String(2048))
    updated_at: Mapped[datetime | None]
    """occurred_at of the newest cart event applied: older events never overwrite newer facts."""
    ordered_at: Mapped[datetime | None]
    order_id: Mapped[str | None] = mapped_column(String(255))
    emptied_at: Mapped[datetime | None]


class Order(Base):
    __tablename__ = "orders"

    order_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    cart_id: Mapped[str | None] = mapped_column(String(255), index=True)
    currency: Mapped[str | None] = mapped_column(String(3))
    total: Mapped[Decimal | None]
    items: Mapped[dict[str, Any]] = mapped_column(default=dict)
    discount_codes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    placed_at: Mapped[datetime]


class Subscription(Base):
    __tablename__ = "subscriptions"

    subscription_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    plan: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str | None] = mapped_column(String(32))
    renews_at: Mapped[datetime | None] = mapped_column(index=True)
    price: Mapped[Decimal | None]
    currency: Mapped[str | None] = mapped_column(String(3))
    updated_at: Mapped[datetime | None]


class WorkflowVersion(Base):
    """The exact workflow an enrollment started with: editing a file only affects new ones."""

    __tablename__ = "workflow_versions"

    workflow_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    source: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class Enrollment(Base):
    __tablename__ = "enrollments"
    __table_args__ = (
        UniqueConstraint("workflow_id", "key"),
        Index("ix_enrollments_contact_status", "contact_id", "status"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    workflow_id: Mapped[str] = mapped_column(String(128))
    workflow_version: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(320))  # migration 0006 says why
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16))
    exit_reason: Mapped[str | None] = mapped_column(String(255))
    started_at: Mapped[datetime]
    """When the trigger happened (the event's occurred_at): step waits count from here."""
    ended_at: Mapped[datetime | None]
    context: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Delivery(Base):
    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("enrollment_id", "step_id"),
        Index("ix_deliveries_status_due", "status", "due_at"),
        Index("ix_deliveries_contact", "contact_id", "status"),
        # Only rows in flight carry a key: the sweeper finds a key's group through this.
        Index(
            "ix_deliveries_send_key",
            "send_key",
            postgresql_where=text("send_key IS NOT NULL"),
            sqlite_where=text("send_key IS NOT NULL"),
        ),
        # Ids go into unsubscribe and click tokens: never reused on SQLite either.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollments.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(Id)
    """The enrollment's contact, copied for the cap and erasure queries. No foreign key of its
    own: the enrollment's already cascades (migration 0005 says why)."""
    workflow_id: Mapped[str] = mapped_column(String(128))
    step_id: Mapped[str] = mapped_column(String(128))
    template: Mapped[str] = mapped_column(String(255))
    variant: Mapped[str | None] = mapped_column(String(32))
    """The A/B variant chosen for this contact, when the step has variants."""
    status: Mapped[str] = mapped_column(String(16))
    due_at: Mapped[datetime]
    planned_at: Mapped[datetime]
    """The due time the workflow planned; deferrals move due_at, expiry counts from here."""
    lease_expires_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    reason: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(Text)
    provider: Mapped[str | None] = mapped_column(String(32))
    provider_message_id: Mapped[str | None] = mapped_column(String(255))
    subject: Mapped[str | None] = mapped_column(String(998))
    discount_code: Mapped[str | None] = mapped_column(String(64))
    sent_at: Mapped[datetime | None]
    send_key: Mapped[str | None] = mapped_column(String(255))
    """The idempotency key of the provider request that carries this row (idempotent providers
    only), stored before the call; a later attempt makes the same request under it. Cleared
    when the row ends (sent, failed, skipped) or is deferred, so only rows in flight hold one."""
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    # Lets ingest create an enrollment and its deliveries in one flush (the id is filled in
    # by the ORM); never loaded lazily.
    enrollment: Mapped[Enrollment] = relationship(lazy="raise_on_sql")


class DiscountCode(Base):
    __tablename__ = "discount_codes"
    __table_args__ = (UniqueConstraint("enrollment_id", "step_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    pool: Mapped[str | None] = mapped_column(String(64), index=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    enrollment_id: Mapped[int | None] = mapped_column(
        ForeignKey("enrollments.id", ondelete="SET NULL")
    )
    step_id: Mapped[str | None] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))  # percent | fixed
    value: Mapped[Decimal]
    currency: Mapped[str | None] = mapped_column(String(3))
    minimum_order: Mapped[Decimal | None]
    status: Mapped[str] = mapped_column(String(16))  # available|assigned|redeemed|expired
    expires_at: Mapped[datetime | None]
    assigned_at: Mapped[datetime | None]
    redeemed_at: Mapped[datetime | None]
    order_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime]


class TrackingEvent(Base):
    """What an ESP told us about a sent message (delivered, bounced, complained, ...)."""

    __tablename__ = "tracking_events"
    __table_args__ = (
        UniqueConstraint("provider", "raw_id"),
        Index("ix_tracking_events_delivery", "delivery_id"),
        Index("ix_tracking_events_email_kind", "email_hash", "kind", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    raw_id: Mapped[str] = mapped_column(String(255))
    """The ESP's id for the event: a redelivered webhook is recorded once."""
    kind: Mapped[str] = mapped_column(String(16))
    email_hash: Mapped[str] = mapped_column(String(64))
    delivery_id: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"))
    provider_message_id: Mapped[str | None] = mapped_column(String(255))
    bounce_class: Mapped[str | None] = mapped_column(String(8))
    detail: Mapped[str | None] = mapped_column(Text)
    user_agent: Mapped[str | None] = mapped_column(String(512))
    """Of an open or click, when the ESP (or our own pixel and redirect) saw one: what tells a
    person from Apple's privacy proxy or a link scanner (migration 0010)."""
    occurred_at: Mapped[datetime]
    received_at: Mapped[datetime]


class WebhookToken(Base):
    """A one-time token of a signed webhook (Mailgun's ``signature.token``), kept while its
    signature could still be fresh, so one signature block is accepted once."""

    __tablename__ = "webhook_tokens"
    __table_args__ = (
        UniqueConstraint("provider", "token"),
        Index("ix_webhook_tokens_seen_at", "seen_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    token: Mapped[str] = mapped_column(String(255))
    seen_at: Mapped[datetime]


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class ProviderPauseRow(Base):
    """A provider paused after an account or configuration fault, shared by every worker:
    nothing is sent through it before ``paused_until``; then one probe batch. No row = not
    paused (a probe the provider accepts deletes it)."""

    __tablename__ = "provider_pauses"

    provider: Mapped[str] = mapped_column(String(64), primary_key=True)
    """The provider's name, with ``@route`` for a named route (``postmark@bulk``)."""
    faults: Mapped[int] = mapped_column(Integer)
    paused_until: Mapped[datetime]
    probing: Mapped[bool]
    reason: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime]
    """When the first of these consecutive faults came."""
    updated_at: Mapped[datetime]


class Product(Base):
    """The shop's catalog, as ``product.upserted`` / ``product.deleted`` events, the shops'
    product webhooks and ``remarket catalog import`` keep it. A deleted product stays as a row
    (``deleted_at``) so an older upsert arriving late cannot bring it back."""

    __tablename__ = "products"
    __table_args__ = (
        Index("ix_products_category_orders", "category", "orders_count", "product_id"),
        Index("ix_products_orders", "orders_count", "product_id"),
    )

    product_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    title: Mapped[str] = mapped_column(String(255))
    url: Mapped[str | None] = mapped_column(String(2048))
    image_url: Mapped[str | None] = mapped_column(String(2048))
    price: Mapped[Decimal | None] = mapped_column(Money)
    compare_at_price: Mapped[Decimal | None] = mapped_column(Money)
    currency: Mapped[str | None] = mapped_column(String(3))
    category: Mapped[str | None] = mapped_column(String(255))
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    available: Mapped[bool]
    inventory: Mapped[int | None]
    variants: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    orders_count: Mapped[int] = mapped_column(Integer, default=0)
    """Orders that contained the product (best sellers per category, the fallback)."""
    updated_at: Mapped[datetime]
    """occurred_at of the newest change applied: an older one never overwrites it."""
    deleted_at: Mapped[datetime | None]
    restocked_at: Mapped[datetime | None]
    """When the product last came back from out of stock (or deleted): back-in-stock reminders
    for people who saw it before it sold out."""


class ProductPair(Base):
    """How often two products were bought in one order ("bought together"), counted as
    orders arrive: both directions are rows, so the lookup is one index range per product."""

    __tablename__ = "product_pairs"
    __table_args__ = (Index("ix_product_pairs_rank", "product_id", "orders", "other_id"),)

    product_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    other_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    orders: Mapped[int] = mapped_column(Integer)


class ProductInterest(Base):
    """A contact viewed or carted a product: what they saw (price, currency, availability)
    and when, the newest sighting kept. What the alert job last told them of it
    (``restock_notified_at``: the restock reminded of; ``drop_notified_price``) keeps a
    change from being announced twice."""

    __tablename__ = "product_interests"
    __table_args__ = (Index("ix_product_interests_product", "product_id", "seen_at"),)

    contact_id: Mapped[int] = mapped_column(
        Id, ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True
    )
    product_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    seen_at: Mapped[datetime]
    price: Mapped[Decimal | None] = mapped_column(Money)
    currency: Mapped[str | None] = mapped_column(String(3))
    available: Mapped[bool | None]
    """None: the catalog did not know the product when it was seen."""
    restock_notified_at: Mapped[datetime | None]
    drop_notified_price: Mapped[Decimal | None] = mapped_column(Money)


class ProductCoview(Base):
    """How many people looked at both products within 30 days ("viewed together"), counted
    when a view is someone's first of a product in that time: both directions are rows, like
    ``ProductPair``."""

    __tablename__ = "product_coviews"
    __table_args__ = (Index("ix_product_coviews_rank", "product_id", "contacts", "other_id"),)

    product_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    other_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    contacts: Mapped[int] = mapped_column(Integer)


class ProductChange(Base):
    """A product upserted in stock: the alert job's to-do list (written with the upsert, in
    its transaction; the job deletes the rows it handled)."""

    __tablename__ = "product_changes"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    product_id: Mapped[str] = mapped_column(String(255))
    noticed_at: Mapped[datetime]


class VariantWinner(Base):
    """An A/B test decided: from ``decided_at`` on, new enrollments get ``variant`` for this
    step (the workflow's history of its tests; ``detail`` says why, with the p-values)."""

    __tablename__ = "variant_winners"
    __table_args__ = (UniqueConstraint("workflow_id", "step_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    workflow_id: Mapped[str] = mapped_column(String(128))
    step_id: Mapped[str] = mapped_column(String(128))
    variant: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text)
    arms: Mapped[dict[str, Any]]
    """variant → {recipients, conversions} when decided."""
    decided_at: Mapped[datetime]


class SegmentMember(Base):
    """A contact in a segment (segments/*.yaml), kept up to date by ingest for the contacts
    each event batch touches and by the scheduler's refresh for everyone (time moves on)."""

    __tablename__ = "segment_members"
    __table_args__ = (Index("ix_segment_members_contact_id", "contact_id"),)

    segment: Mapped[str] = mapped_column(String(64), primary_key=True)
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True
    )
    joined_at: Mapped[datetime]


class SegmentState(Base):
    """Per segment: the version of its expression the members were computed with, the last
    full refresh and the last change of its members."""

    __tablename__ = "segment_states"

    segment: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[str] = mapped_column(String(16))
    refreshed_at: Mapped[datetime | None]
    changed_at: Mapped[datetime | None]
