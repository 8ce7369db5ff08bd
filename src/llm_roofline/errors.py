"""One exception type for everything the user can get wrong; the CLI prints it as one line, exit code 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(ValueError):
    """Bad input: the message says what is wrong and how to fix it."""


def closest(name: str, choices: Iterable[str], n: int = 3) -> str:
    """'; closest: a, b, c' or '' when nothing is close."""
    matches = difflib.get_close_matches(name, list(choices), n=n, cutoff=0.5)
    return f"; closest: {', '.join(matches)}" if matches else ""


def require_positive(name: str, value: float, integer: bool = True, allow_zero: bool = False) -> None:
    import math
    import numbers

    kind = "an integer" if integer else "a number"
    numeric = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    ok = numeric and (value >= 0 if allow_zero else value > 0)
    if ok and integer and int(value) != value:
        ok = False
    if not ok:
        bound = ">= 0" if allow_zero else ">= 1" if integer else "> 0"
        raise UserError(f"{name} must be {kind} {bound}, got {value!r}")
