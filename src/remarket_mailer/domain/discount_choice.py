"""Which discount code a step's email carries: a pure choice over what the enrollment holds.

The send path loads the enrollments' codes once per batch, asks :func:`choose_code` per email,
and applies the answer: reuse a code it holds, take one from an imported pool, generate one,
send without one, or skip the step. A pool's stock is only known by trying to take a code, so
a ``FromPool`` that finds the pool empty asks again with ``pool_exhausted=True``.
"""

from __future__ import annotations

from dataclasses import dataclass

from remarket_mailer.domain.workflow import DiscountSpec


@dataclass(frozen=True, slots=True)
class CodeFacts:
    spec: DiscountSpec | None
    """The step's ``discount`` (None: the step carries no code)."""
    has_step_code: bool = False
    """This (enrollment, step) already holds a code: a retry or a replay sends the same one."""
    has_earlier_code: bool = False
    """The enrollment holds a code from an earlier step (what ``reuse`` sends)."""
    pool_exhausted: bool = False
    """The step's pool had no code left to give (known once the send path tried)."""


@dataclass(frozen=True, slots=True)
class NoCode:
    """Send without a code: the step has none, or its pool is empty and says
    ``when_exhausted: send_without_code``."""


@dataclass(frozen=True, slots=True)
class Reuse:
    own_step: bool
    """True: this step's own code; False: the enrollment's latest code (``reuse``)."""


@dataclass(frozen=True, slots=True)
class FromPool:
    pool: str


@dataclass(frozen=True, slots=True)
class Generate:
    prefix: str
    length: int


@dataclass(frozen=True, slots=True)
class SkipStep:
    detail: str


CodeChoice = NoCode | Reuse | FromPool | Generate | SkipStep


def choose_code(facts: CodeFacts) -> CodeChoice:
    """The code an email gets. A code the step already holds always wins (one code per
    enrollment and step); then, for a ``reuse`` step, the enrollment's earlier code; then the
    pool, while it has codes; then ``when_exhausted`` (generating is the default without a
    pool)."""
    spec = facts.spec
    if spec is None:
        return NoCode()
    if facts.has_step_code:
        return Reuse(own_step=True)
    if spec.reuse and facts.has_earlier_code:
        return Reuse(own_step=False)
    if spec.pool is None or (facts.pool_exhausted and spec.when_exhausted == "generate"):
        return Generate(spec.prefix, spec.length)
    if not facts.pool_exhausted:
        return FromPool(spec.pool)
    if spec.when_exhausted == "skip_step":
        return SkipStep(f"discount pool {spec.pool!r} is empty")
    return NoCode()
