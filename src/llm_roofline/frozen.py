"""Building frozen dataclasses fast: predict makes a dozen result objects per call, and a frozen dataclass's
generated __init__ sets each field through object.__setattr__, which costs more than the arithmetic behind them."""

from __future__ import annotations

from dataclasses import MISSING, fields

_LAYOUT: dict = {}


def _layout(cls) -> tuple[dict, int]:
    hit = _LAYOUT.get(cls)
    if hit is None:
        fs = fields(cls)
        defaults = {f.name: f.default for f in fs if f.default is not MISSING}
        defaults.update({f.name: f.default_factory() for f in fs if f.default_factory is not MISSING})
        hit = _LAYOUT[cls] = (defaults, len(fs))
    return hit


def make(cls, **values):
    """cls(**values), the same frozen object, without the per-field __setattr__ (defaults filled in)."""
    defaults, n = _layout(cls)
    obj = object.__new__(cls)
    d = obj.__dict__
    if defaults:
        d.update(defaults)
    d.update(values)
    if len(d) != n:
        raise TypeError(f"{cls.__name__}: fields {sorted(set(f.name for f in fields(cls)) ^ set(d))} missing or unknown")
    return obj
