"""Template source files: front matter, a loader that stays inside its directory, and mapping
a problem in compiled output (laid-out MJML, compiled HTML) back to ``file:line`` in a source.

The compiled HTML is what gets rendered per email, but nobody edits it: when it fails, the
Jinja tag or the line at fault is looked up in the files the template was built from.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml
from jinja2 import BaseLoader, Environment, TemplateNotFound
from jinja2.loaders import split_template_path

from remarket_mailer.rendering.errors import TemplateSourceError

JINJA_TAG = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)


@dataclass(frozen=True, slots=True)
class FrontMatter:
    """A template's YAML header (subject, preheader) and its body."""

    data: dict[str, Any]
    body: str
    body_line: int
    """1-based line of the file where the body starts."""
    lines: dict[str, int] = field(default_factory=dict)
    """1-based line where each header value's text starts."""


def parse_front_matter(raw: str, file: str) -> FrontMatter:
    """Split ``---``-fenced YAML front matter from the template body.

    Raises TemplateSourceError (with the line) for an unterminated header or invalid YAML.
    """
    if not raw.startswith("---"):
        return FrontMatter({}, raw, 1)
    parts = raw.split("\n---", 1)
    if len(parts) != 2:
        raise TemplateSourceError(file, 1, "front matter starts with --- but never ends")
    header = parts[0].removeprefix("---")
    rest = parts[1]
    body = rest.split("\n", 1)[1] if "\n" in rest else ""
    body_line = raw.count("\n", 0, len(raw) - len(body)) + 1
    try:
        node = yaml.compose(header)
        data = yaml.safe_load(header) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        raise TemplateSourceError(file, line, f"front matter is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise TemplateSourceError(
            file, 1, "front matter must be a mapping (subject: ..., preheader: ...)"
        )
    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            block = isinstance(value, yaml.ScalarNode) and value.style in ("|", ">")
            lines[str(key.value)] = value.start_mark.line + 1 + int(block)
    return FrontMatter(data, body, body_line, lines)


def blank_front_matter(raw: str, file: str) -> str:
    """The body with the front matter replaced by as many empty lines: line numbers stay."""
    front = parse_front_matter(raw, file)
    return "\n" * (front.body_line - 1) + front.body


class TemplateFiles(BaseLoader):
    """Loads compile-time sources (layouts, partials, templates) from one directory.

    Names that lead outside the directory — ``..``, absolute paths, symlinks pointing out —
    are not found. ``.mjml`` files come without their front matter (blank lines instead).
    Every name loaded is appended to ``loaded``, so a compile knows what it was built from.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._resolved = root.resolve()
        self.loaded: list[str] = []

    def path(self, name: str) -> Path:
        """The file behind template ``name``; raises TemplateNotFound outside the directory."""
        pieces = split_template_path(name)
        path = self.root.joinpath(*pieces)
        resolved = path.resolve()
        if not resolved.is_relative_to(self._resolved) or not resolved.is_file():
            raise TemplateNotFound(name)
        return path

    def get_source(
        self, environment: Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        path = self.path(template)
        try:
            raw = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise TemplateSourceError(str(path), None, "not UTF-8 text") from None
        except OSError:
            raise TemplateNotFound(template) from None
        if template.endswith(".mjml"):
            raw = blank_front_matter(raw, str(path))
        self.loaded.append(template)
        return raw, str(path), lambda: False


def find_line(files: Sequence[tuple[str, str]], needle: str) -> tuple[str, int] | None:
    """The first ``(file, line)`` whose text contains ``needle``, in the order given."""
    if not needle.strip():
        return None
    for name, text in files:
        at = text.find(needle)
        if at >= 0:
            return name, text.count("\n", 0, at) + 1
    return None


def traceback_line(tb: TracebackType | None, filename: str) -> int | None:
    """The innermost line of template ``filename`` in a traceback Jinja has rewritten."""
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


_NAMES = re.compile(
    r"'([A-Za-z_][A-Za-z0-9_]*)' is undefined|no (?:attribute|element) '([^']+)'"
    r"|access to attribute '([^']+)'"  # the sandbox refusing ''.__class__
)


def locate_in_sources(
    compiled: str, line: int | None, message: str, files: Sequence[tuple[str, str]]
) -> tuple[str, int, str | None] | None:
    """Where in the sources the Jinja tag on ``line`` of ``compiled`` came from, and the tag.

    Tags that mention the name from the error message (``'x' is undefined``) are tried first,
    then the others on that line, then the line's text itself (the tag is None then).
    """
    if line is None:
        return None
    lines = compiled.splitlines()
    if not 0 < line <= len(lines):
        return None
    text = lines[line - 1]
    tags = JINJA_TAG.findall(text)
    names = [a or b or c for a, b, c in _NAMES.findall(message)]
    ranked = sorted(tags, key=lambda tag: _suspicion(tag, names, message))
    for tag in ranked:
        found = find_line(files, tag)
        if found is not None:
            return found[0], found[1], tag
    stripped = text.strip()
    found = find_line(files, stripped) if len(stripped) > 3 else None
    return (found[0], found[1], None) if found is not None else None


def _suspicion(tag: str, names: list[str], message: str) -> int:
    """How unlikely ``tag`` is to have raised ``message``: lower is tried first."""
    if any(name in tag for name in names):
        return 0
    if message.startswith("KeyError") and tag.startswith("{% trans"):
        return 1  # a translation naming a placeholder the template does not pass
    if _QUIET.match(tag):
        return 3
    return 2


_QUIET = re.compile(r"\{%-?\s*(end\w*|else|elif|pluralize)\b")


class _Balance(HTMLParser):
    """Finds the first unbalanced ``mj-*`` element in laid-out MJML."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, int]] = []
        self.problem: tuple[int, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag.startswith("mj") and self.problem is None:
            self.stack.append((tag, self.getpos()[0]))

    def handle_endtag(self, tag: str) -> None:
        if not tag.startswith("mj") or self.problem is not None:
            return
        line = self.getpos()[0]
        if not self.stack:
            self.problem = (line, f"</{tag}> closes nothing")
        elif self.stack[-1][0] != tag:
            open_tag, open_line = self.stack[-1]
            if any(t == tag for t, _ in self.stack):
                self.problem = (open_line, f"<{open_tag}> is not closed before </{tag}>")
            else:
                self.problem = (line, f"</{tag}> closes nothing (<{open_tag}> is open)")
        else:
            self.stack.pop()


def mjml_problem(laid_out: str) -> tuple[int, str] | None:
    """Line (in ``laid_out``) and description of an unbalanced MJML element, if any."""
    blanked = JINJA_TAG.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), laid_out)
    parser = _Balance()
    parser.feed(blanked)
    parser.close()
    if parser.problem is not None:
        return parser.problem
    if parser.stack:
        tag, line = parser.stack[-1]
        return line, f"<{tag}> is never closed"
    return None


def less_than_in_jinja(files: Sequence[tuple[str, str]]) -> tuple[str, int] | None:
    """The first ``{{ … < … }}`` / ``{% … < … %}`` in an MJML source: MJML reads it as a tag."""
    for name, text in files:
        if not name.endswith(".mjml"):
            continue
        for match in JINJA_TAG.finditer(text):
            if "<" in match.group(0):
                return name, text.count("\n", 0, match.start()) + 1
    return None


def stamp(path: Path) -> tuple[Path, int, int]:
    """(path, mtime_ns, size): enough to notice an edit without reading the file."""
    try:
        stat = path.stat()
    except OSError:
        return path, -1, -1
    return path, stat.st_mtime_ns, stat.st_size


def edited(sources: tuple[tuple[str, str], ...], stamps: tuple[tuple[Path, int, int], ...]) -> bool:
    """True when a file has other content than when compiled (only read if its stamp moved)."""
    if all(stamp(path) == (path, mtime, size) for path, mtime, size in stamps):
        return False
    for file, content in sources:
        try:
            if Path(file).read_text(encoding="utf-8") != content:
                return True
        except OSError:
            return True
    return False


def restamp(stamps: tuple[tuple[Path, int, int], ...]) -> tuple[tuple[Path, int, int], ...]:
    return tuple(stamp(path) for path, _, _ in stamps)
