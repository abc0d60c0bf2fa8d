"""Ranking recommendations without a database."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from remarket_mailer.domain.recommend import recommend


@dataclass(frozen=True)
class P:
    product_id: str
    category: str | None = "kitchen"


MUG, POT, TEA, CUP, SPOON, BAG = (P(n) for n in ("mug", "pot", "tea", "cup", "spoon", "bag"))


def test_bought_with_more_seeds_ranks_first_then_ties_by_id() -> None:
    partners = {
        "mug": [(TEA, 3), (SPOON, 2), (POT, 2)],
        "cup": [(SPOON, 2)],
    }
    found = recommend(["mug", "cup"], partners, {}, limit=3)
    assert [p.product_id for p in found] == ["spoon", "tea", "pot"]  # spoon 4, tea 3, pot 2


def test_seeds_and_exclusions_are_never_shown_and_best_sellers_top_up() -> None:
    partners = {"mug": [(TEA, 3), (CUP, 1)]}
    sellers = {"kitchen": [MUG, POT, TEA], None: [BAG, POT]}
    found = recommend(["mug"], partners, sellers, categories=["kitchen"], exclude=["cup"], limit=4)
    assert [p.product_id for p in found] == ["tea", "pot", "bag"]


def test_a_new_shop_without_orders_gets_best_sellers() -> None:
    assert recommend(["mug"], {}, {None: [MUG, POT]}, limit=2) == [POT]
    assert recommend([], {}, {}, limit=3) == []
    assert recommend(["mug"], {"mug": [(TEA, 1)]}, {}, limit=0) == []


ids = st.sampled_from(["a", "b", "c", "d", "e", "f"])


@given(
    seeds=st.lists(ids, max_size=3),
    pairs=st.dictionaries(ids, st.lists(st.tuples(ids, st.integers(1, 9)), max_size=4)),
    sellers=st.lists(ids, max_size=6),
    exclude=st.lists(ids, max_size=2),
    limit=st.integers(0, 5),
)
def test_never_a_seed_an_excluded_or_a_repeat_and_never_more_than_asked(
    seeds: list[str],
    pairs: dict[str, list[tuple[str, int]]],
    sellers: list[str],
    exclude: list[str],
    limit: int,
) -> None:
    partners = {k: [(P(pid), n) for pid, n in v] for k, v in pairs.items()}
    found = recommend(
        seeds, partners, {None: [P(s) for s in sellers]}, exclude=exclude, limit=limit
    )
    shown = [p.product_id for p in found]
    assert len(shown) <= limit and len(set(shown)) == len(shown)
    assert not set(shown) & (set(seeds) | set(exclude))


def test_viewed_together_tops_up_after_bought_together_and_before_best_sellers() -> None:
    partners = {"mug": [(TEA, 3)]}
    viewed = {"mug": [(TEA, 9), (SPOON, 2), (CUP, 5)], "cup": [(BAG, 1)]}
    sellers = {None: [POT, BAG]}
    found = recommend(["mug"], partners, sellers, viewed=viewed, exclude=["cup"], limit=4)
    assert [p.product_id for p in found] == ["tea", "spoon", "pot", "bag"]
    assert [p.product_id for p in recommend(["mug"], {}, {}, viewed=viewed, limit=2)] == [
        "tea",
        "cup",
    ]


def test_a_view_pairs_once_with_the_persons_other_recent_products() -> None:
    from datetime import UTC, datetime, timedelta

    from remarket_mailer.domain.recommend import viewed_together

    t0 = datetime(2026, 11, 2, tzinfo=UTC)
    seen = {"mug": t0 - timedelta(days=2), "tea": t0 - timedelta(days=1), "old": t0 - timedelta(40)}
    assert viewed_together(seen, "pot", t0) == ["tea", "mug"]  # the most recent first
    assert viewed_together(seen, "pot", t0, most=1) == ["tea"]
    assert viewed_together(seen, "mug", t0) == []  # looked at it already: counted then
    again = {"mug": t0 - timedelta(days=31), "tea": t0 - timedelta(days=1)}
    assert viewed_together(again, "mug", t0) == ["tea"]  # a month on, it counts again
    assert viewed_together({}, "pot", t0) == []
