"""llm-roofline: how fast will model M run on hardware H, and why.

    >>> import llm_roofline
    >>> p = llm_roofline.predict("llama-3.1-70b", "h100")
    >>> round(p.decode.ceiling_tok_s, 1), p.decode.bound
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"
__all__ = ["predict", "compile", "sweep", "plan", "load_model", "load_hardware", "load_format", "param_counts",
           "UserError", "__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from .architecture import load_model, param_counts
    from .errors import UserError
    from .formats import load_format
    from .compiled import compile
    from .hardware import load_hardware
    from .plan import plan
    from .roofline import predict
    from .sweeps import sweep

_LAZY = {
    "predict": "roofline",
    "compile": "compiled",
    "sweep": "sweeps",
    "plan": "plan",
    "load_model": "architecture",
    "param_counts": "architecture",
    "load_hardware": "hardware",
    "load_format": "formats",
    "UserError": "errors",
}


def __getattr__(name: str):
    # Imports happen on first use so that `llm-roofline --help` and small queries start fast.
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value  # later lookups find it without this function
        return value
    raise AttributeError(f"module 'llm_roofline' has no attribute {name!r}")
