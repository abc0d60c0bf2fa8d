"""Who shares a provider request and under which key, and who shares a send_batch message.

An idempotent provider replays a key only for the same request, so a group of messages that
went out under a key must be sent again whole under it: the plan never splits it, and the
sweeper never splits it across broker messages.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from remarket_mailer.db.claims import Claimed
from remarket_mailer.delivery.base import OutboundMessage, plan_keyed
from remarket_mailer.delivery.providers.memory import MemoryProvider
from remarket_mailer.delivery.providers.resend import batch_idempotency_key
from remarket_mailer.services.dispatch import pack_batches


def message(delivery_id: int, send_key: str | None = None) -> OutboundMessage:
    return OutboundMessage(
        delivery_id=delivery_id,
        message_id=f"{delivery_id}.abc@shop.example",
        from_addr="news@shop.example",
        to_addr=f"ann{delivery_id}@example.org",
        subject="Hi",
        html="<p>Hi</p>",
        text="Hi",
        send_key=send_key,
    )


@st.composite
def batches(draw: Any) -> tuple[int, list[OutboundMessage]]:
    """A worker batch: some groups stored under a key by an earlier attempt (each at most
    ``max_batch``, as the plan made them), new messages, in any order."""
    max_batch = draw(st.integers(min_value=1, max_value=8))
    sizes = draw(st.lists(st.integers(min_value=1, max_value=max_batch), max_size=5))
    fresh = draw(st.integers(min_value=0, max_value=30))
    ids = draw(st.permutations(range(1, sum(sizes) + fresh + 1)))
    messages: list[OutboundMessage] = []
    start = 0
    for number, size in enumerate(sizes):
        messages += [message(i, f"stored-{number}") for i in ids[start : start + size]]
        start += size
    messages += [message(i) for i in ids[start:]]
    return max_batch, draw(st.permutations(messages))


@given(batches())
def test_plan_keyed_properties(batch: tuple[int, list[OutboundMessage]]) -> None:
    max_batch, messages = batch
    chunks = plan_keyed(messages, max_batch, batch_idempotency_key)

    planned = [m.delivery_id for chunk in chunks for m in chunk]
    assert sorted(planned) == sorted(m.delivery_id for m in messages), "each exactly once"
    keys = [{m.send_key for m in chunk} for chunk in chunks]
    assert all(len(k) == 1 and None not in k for k in keys), "one key per request"
    assert len({k.pop() for k in keys}) == len(chunks), "no key shared by two requests"
    for chunk in chunks:
        assert 1 <= len(chunk) <= max_batch
        assert [m.delivery_id for m in chunk] == sorted(m.delivery_id for m in chunk)
    key_of = {m.delivery_id: m.send_key for chunk in chunks for m in chunk}
    for original in messages:
        if original.send_key is not None:
            assert key_of[original.delivery_id] == original.send_key, "a stored key is kept"
    again = plan_keyed([m for chunk in chunks for m in chunk], max_batch, batch_idempotency_key)
    assert again == chunks, "a retry of the same rows makes the same requests"


def test_plan_of_a_provider_without_keys_is_slices_in_order() -> None:
    provider = MemoryProvider()
    provider.max_batch = 2
    messages = [message(3), message(1, "stale"), message(2)]
    assert provider.plan(messages) == [messages[:2], messages[2:]]


@st.composite
def claims(draw: Any) -> list[Claimed]:
    ids = draw(st.lists(st.integers(min_value=1, max_value=10**6), unique=True, max_size=60))
    keys = st.one_of(st.none(), st.sampled_from(["k-a", "k-b", "k-c", "k-d"]))
    return [Claimed(i, draw(keys)) for i in ids]


@given(claims(), st.integers(min_value=1, max_value=12))
def test_pack_batches_never_splits_a_key_group(rows: list[Claimed], size: int) -> None:
    batches = pack_batches(rows, size)

    assert sorted(i for b in batches for i in b) == sorted(r.id for r in rows)
    where = {i: n for n, b in enumerate(batches) for i in b}
    group: dict[str, set[int]] = {}
    for row in rows:
        if row.send_key is not None:
            group.setdefault(row.send_key, set()).add(where[row.id])
    assert all(len(found) == 1 for found in group.values()), "a key group split"
    key_of = {r.id: r.send_key for r in rows}
    for b in batches:
        # Only a key group larger than the batch size makes a larger batch, alone.
        assert len(b) <= size or len({key_of[i] for i in b}) == 1


@given(st.lists(st.integers(), unique=True, max_size=50), st.integers(min_value=1, max_value=9))
def test_pack_batches_without_keys_are_plain_slices(ids: list[int], size: int) -> None:
    rows = [Claimed(i, None) for i in ids]
    assert pack_batches(rows, size) == [ids[i : i + size] for i in range(0, len(ids), size)]


def test_pack_batches_keeps_groups_and_order() -> None:
    rows = [
        Claimed(1, "a"),
        Claimed(2, "b"),
        Claimed(3, None),
        Claimed(4, "a"),
        Claimed(5, "b"),
        Claimed(6, None),
    ]
    assert pack_batches(rows, 2) == [[1, 4], [2, 5], [3, 6]]
    assert pack_batches(rows, 3) == [[1, 4], [2, 5, 3], [6]]
