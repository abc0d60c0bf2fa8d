"""A template problem that knows where it is: ``file:line: message``."""

from __future__ import annotations

from remarket_mailer.errors import TemplateError


class TemplateSourceError(TemplateError):
    """A TemplateError pointing at a source file and, when known, a line in it.

    ``file`` is the path as the templates directory was given (``templates/x/y.mjml``), so an
    editor can jump to it; ``line`` is 1-based or None when the problem is the whole file.
    """

    def __init__(self, file: str, line: int | None, message: str) -> None:
        super().__init__(message)
        self.file = file
        self.line = line
        self.message = message

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"
