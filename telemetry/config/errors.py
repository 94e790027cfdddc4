"""Configuration problems and the one exception that carries all of them.

``str(ConfigError)`` is the complete report a user reads: ``fermentry check-config`` prints it
and ``fermentry run`` exits with it instead of a traceback.
"""

from __future__ import annotations

from telemetry.errors import ConfigError as _FermentryConfigError

import difflib
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic_core import InitErrorDetails, PydanticCustomError
from pydantic_core.core_schema import ErrorType

_NO_VALUE = object()


def suggest(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or an empty string."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def format_loc(loc: Sequence[str | int]) -> str:
    """``('loops', 2, 'kp')`` -> ``loops[2].kp``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a configuration.

    ``path`` is the field path (``loops[2].kp``), ``value`` the offending value (``None`` when
    the problem is a missing value), ``message`` says what is allowed.
    """

    path: str
    message: str
    value: object = _NO_VALUE
    position: tuple[int, int] | None = None
    """(line, column), 1-based, for problems located in the text (TOML syntax)."""

    def render(self, source: str) -> str:
        if self.position is not None:
            return f"{source}:{self.position[0]}:{self.position[1]}: {self.message}"
        shown = "" if self.value is _NO_VALUE or self.value is None else f" = {_short(self.value)}"
        return f"{source}: {self.path}{shown}: {self.message}"


@dataclass(frozen=True)
class Issue:
    """A cross-section problem found while resolving, located by a pydantic-style ``loc``."""

    loc: tuple[str | int, ...]
    message: str
    value: object = None
    error_type: str = "config"
    """A pydantic error type when the issue is a re-located pydantic error (a bad override)."""
    ctx: dict[str, Any] | None = None

    def as_error_details(self) -> InitErrorDetails:
        if self.error_type in _BUILTIN_ERROR_TYPES:
            detail = InitErrorDetails(type=self.error_type, loc=self.loc, input=self.value)  # type: ignore[typeddict-item]
            if self.ctx is not None:
                detail["ctx"] = self.ctx
            return detail
        return InitErrorDetails(type=PydanticCustomError(self.error_type, self.message), loc=self.loc,
                                input=self.value)

    def as_error_dict(self) -> dict[str, Any]:
        """The shape of one entry of ``ValidationError.errors()``."""
        return {"type": self.error_type, "loc": self.loc, "msg": self.message, "input": self.value,
                "ctx": self.ctx or {}}


_BUILTIN_ERROR_TYPES = frozenset(typing.get_args(ErrorType))


class ConfigError(_FermentryConfigError):
    """A configuration that cannot be used; ``str()`` is the full multi-line report."""

    def __init__(self, source: str, problems: Sequence[Problem]) -> None:
        self.source = source
        self.problems = tuple(problems)
        super().__init__(self.report())

    def report(self) -> str:
        n = len(self.problems)
        head = f"{self.source}: {n} configuration error{'s' if n != 1 else ''}"
        return "\n".join([head, *(f"  {p.render(self.source)}" for p in self.problems)])

    def __str__(self) -> str:
        return self.report()


def _short(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
