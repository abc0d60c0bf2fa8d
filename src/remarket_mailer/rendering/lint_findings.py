"""What ``remarket lint`` found: each problem once per (file, line, message), noting the
languages and samples it showed up with when not all of them."""

from __future__ import annotations

from dataclasses import dataclass, field

from remarket_mailer.errors import TemplateError
from remarket_mailer.rendering.errors import TemplateSourceError


@dataclass(frozen=True, slots=True)
class LintProblem:
    """One problem: ``file`` as given (``templates/x/y.mjml``), 1-based ``line`` or None."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"


@dataclass
class LintReport:
    """What lint looked at and what it found."""

    problems: list[LintProblem]
    templates: list[str]
    languages: tuple[str, ...]
    samples: tuple[str, ...]


@dataclass
class Found:
    """Where one problem showed up."""

    languages: set[str] = field(default_factory=set)
    samples: set[str] = field(default_factory=set)
    plain: bool = True
    """Found with a sample as it is (not only with a combination of optional blocks)."""
    example: str | None = None


class Collector:
    """Problems in order found; one per (file, line, message), with where it showed up."""

    def __init__(self, languages: tuple[str, ...], samples: tuple[str, ...]) -> None:
        self.languages = languages
        self.samples = samples
        self.found: dict[tuple[str, int | None, str], Found] = {}

    def add(
        self,
        file: str,
        line: int | None,
        message: str,
        language: str | None = None,
        sample: str | None = None,
        *,
        variant: bool = False,
        example: str | None = None,
    ) -> None:
        key = (file, line, message)
        seen = self.found.get(key)
        if seen is None:
            seen = self.found[key] = Found(plain=not variant, example=example)
        elif variant and seen.plain:
            return  # the samples as they are already show it: report it with them
        if language is not None:
            seen.languages.add(language)
        if sample is not None:
            seen.samples.add(sample)

    def add_error(
        self, error: TemplateError, fallback: str, language: str | None, sample: str | None = None
    ) -> None:
        if isinstance(error, TemplateSourceError):
            self.add(error.file, error.line, error.message, language, sample)
        else:
            self.add(fallback, None, str(error), language, sample)

    def problems(self) -> list[LintProblem]:
        result = []
        for (file, line, message), seen in self.found.items():
            notes = []
            if seen.languages and len(seen.languages) < len(self.languages):
                notes.append("language " + ", ".join(sorted(seen.languages)))
            if seen.samples and not set(self.samples) <= seen.samples:
                names = sorted(seen.samples, key=lambda s: (s.count(","), s))
                more = f"; and {len(names) - 3} more" if len(names) > 3 else ""
                notes.append("sample " + "; ".join(names[:3]) + more)
            example = f": {seen.example!r}" if seen.example else ""
            suffix = f" [{'; '.join(notes)}]" if notes else ""
            result.append(LintProblem(file, line, message + example + suffix))
        return sorted(result, key=lambda p: (p.file, p.line or 0, p.message))
