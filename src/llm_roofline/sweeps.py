"""`sweep`: predict's figures for arrays of workloads at once, one compiled step evaluated with numpy.

    >>> import numpy as np, llm_roofline
    >>> s = llm_roofline.sweep("llama-3.1-8b", "h100", batch=np.arange(1, 513)[:, None], context=[1024, 8192])
    >>> s.estimate_tok_s.shape          # (512, 2): one figure per batch x context

Every figure equals scalar predict's for the same workload (tests/test_sweep.py checks random points to 1e-9).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from .architecture import ModelSpec
from .compiled import MAX_TOKENS, Compiled, compile
from .errors import UserError
from .factored import factor
from .factored import times as factored_times
from .formats import WeightFormat
from .hardware import Hardware
from .memory import GB, GIB


@dataclass(frozen=True)
class SweepResult:
    """One array per figure, all of the workloads' broadcast shape."""

    model: str
    hardware: str
    weights: str
    kv_cache: str
    tp: int
    pp: int
    engine: str | None
    batch: np.ndarray
    prompt: np.ndarray
    context: np.ndarray  # KV depth when decoding starts
    gen: np.ndarray
    ceiling_tok_s: np.ndarray  # decode, per sequence
    estimate_tok_s: np.ndarray
    throughput_tok_s: np.ndarray  # decode, over the batch (estimate)
    throughput_per_device_tok_s: np.ndarray
    tpot_floor_ms: np.ndarray
    tpot_ms: np.ndarray
    ttft_floor_ms: np.ndarray
    ttft_ms: np.ndarray
    memory_gb: np.ndarray  # per device (the heaviest of a tp x pp layout)
    fits: np.ndarray
    ep: int = 1  # expert-parallel devices per stage (1: none)

    ARRAYS = ("batch", "prompt", "context", "gen", "ceiling_tok_s", "estimate_tok_s", "throughput_tok_s",
              "throughput_per_device_tok_s", "tpot_floor_ms", "tpot_ms", "ttft_floor_ms", "ttft_ms", "memory_gb", "fits")

    @property
    def devices(self) -> int:
        return max(self.tp, self.ep) * self.pp

    @property
    def size(self) -> int:
        return int(self.batch.size)

    def records(self) -> list[dict]:
        """One dict per workload (flattened), for tables, CSV and JSON."""
        head = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in self.ARRAYS}
        columns = {k: getattr(self, k).reshape(-1).tolist() for k in self.ARRAYS}
        return [{**head, "devices": self.devices, **{k: columns[k][i] for k in self.ARRAYS}} for i in range(self.size)]

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in self.ARRAYS}
        out["shape"] = list(self.batch.shape)
        out.update({k: getattr(self, k).tolist() for k in self.ARRAYS})
        return out


def _whole(name: str, value, minimum: int) -> np.ndarray:
    """An array of whole numbers within bounds, or one clear error."""
    arr = np.asarray(value)
    if arr.size == 0:
        raise UserError(f"{name} is empty; give at least one value")
    if arr.dtype.kind not in "iuf" or not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
        raise UserError(f"{name} must be whole numbers, got {value!r}"[:200])
    if np.any(arr < minimum) or np.any(arr > MAX_TOKENS):
        raise UserError(f"{name} must lie in {minimum}..{MAX_TOKENS:,}")
    return arr.astype(float)


def evaluate(compiled: Compiled, batch=1, prompt=512, context=None, gen=256) -> SweepResult:
    """The figures of `compiled` for workloads broadcast from the arrays (context None: the prompt)."""
    b, p, g = _whole("batch", batch, 1), _whole("prompt", prompt, 1), _whole("gen", gen, 1)
    d = p if context is None else _whole("context", context, 0)
    try:
        shape = np.broadcast_shapes(b.shape, p.shape, d.shape, g.shape)
    except ValueError:
        raise UserError(f"batch {b.shape}, prompt {p.shape}, context {d.shape} and gen {g.shape} do not broadcast "
                        "together (numpy rules); put the values to combine on different axes, e.g. "
                        "batch=np.arange(1, 65)[:, None], context=[1024, 8192]") from None
    parts = factor(compiled)
    if parts is not None:  # each part on the distinct values it depends on (factored.py), exactly
        t = factored_times(compiled, parts, b, p, d, g)
        step_s, ceiling_s = t["decode_estimate_s"], t["decode_ceiling_s"]
        ttft_floor_s, ttft_s = t["prefill_ceiling_s"], t["prefill_estimate_s"]
    else:
        t = compiled.times(*np.broadcast_arrays(b, p, d, g))
        step_s, ceiling_s = t.decode.estimate_s, t.decode_ceiling_s
        ttft_floor_s, ttft_s = t.prefill.ceiling_s, t.prefill.estimate_s
    hw = compiled.hw
    fp = compiled.footprint
    tp = compiled.tp
    used = fp.used(b, p, d + g, tp)  # broadcasts
    used = np.broadcast_to(used, shape)
    b_all = np.broadcast_to(b, shape)
    step_s, ceiling_s, ttft_floor_s, ttft_s = (x.reshape(shape) for x in (step_s, ceiling_s, ttft_floor_s, ttft_s))
    throughput = b_all / step_s
    b, p, d, g = np.broadcast_arrays(b, p, d, g)
    return SweepResult(
        compiled.spec.id, hw.id, compiled.fmt.id, compiled.kv_name, tp, compiled.pp, compiled.engine,
        b, p, d, g, 1 / ceiling_s, 1 / step_s, throughput, throughput / compiled.devices, ceiling_s * 1e3,
        step_s * 1e3, ttft_floor_s * 1e3, ttft_s * 1e3, used / GB, used <= hw.memory_gb * GIB, compiled.ep)


def sweep(model: str | Path | ModelSpec, hardware: str | Path | Hardware, *, batch=1, prompt=512, context=None,
          gen=256, weights: str | WeightFormat | None = None, kv_cache: str | None = None, tp: int = 1, pp: int = 1,
          engine: str | None = None, bandwidth_efficiency: float | None = None,
          compute_efficiency: float | None = None, step_overhead_us: float | None = None, ep: int = 1) -> SweepResult:
    """predict's headline figures for every workload the arrays broadcast to (numpy rules), in one evaluation
    of the compiled step: batch, prompt, context (KV depth when decoding starts; default the prompt), gen."""
    compiled = compile(model, hardware, weights=weights, kv_cache=kv_cache, tp=tp, pp=pp, engine=engine,
                       bandwidth_efficiency=bandwidth_efficiency, compute_efficiency=compute_efficiency,
                       step_overhead_us=step_overhead_us, ep=ep)
    return evaluate(compiled, batch, prompt, context, gen)


MAX_CONFIGS = 5_000_000  # one sweep's configurations: about a second of evaluation, and a CSV of some 500 MB


def sweep_configs(model: str | Path | ModelSpec, hardware: list, *, weights: list | None = None,
                  tp: list[int] | None = None, pp: list[int] | None = None, batch=1, prompt=512, context=None,
                  gen=256, kv_cache: str | None = None, engine: str | None = None,
                  ep: list[int] | None = None, progress=None) -> list[SweepResult]:
    """sweep() for every device x format x tp x pp x ep: all compiled (and so checked) before any is evaluated.
    Expert-parallel sizes pair only with the tp sizes they are multiples of (ep 1 with every tp). progress:
    called (done, total, label) as the layouts are compiled and evaluated."""
    b, p, g = _whole("batch", batch, 1), _whole("prompt", prompt, 1), _whole("gen", gen, 1)
    d = None if context is None else _whole("context", context, 0)
    per_layout = int(np.prod(np.broadcast_shapes(b.shape, p.shape, g.shape, () if d is None else d.shape)))
    layouts = [(h, f, t, s, e) for h in hardware for f in (weights or [None]) for t in (tp or [1]) for s in (pp or [1])
               for e in (ep or [1]) if e == 1 or not e % t]
    if not layouts:
        raise UserError(f"no --ep size ({', '.join(map(str, ep))}) is a multiple of a --tp size "
                        f"({', '.join(map(str, tp or [1]))}); pair them, e.g. --tp 1 --ep 8")
    if per_layout * len(layouts) > MAX_CONFIGS:
        raise UserError(f"{per_layout * len(layouts):,} configurations is more than one sweep takes "
                        f"({MAX_CONFIGS:,}); sweep fewer devices, formats or values")
    report = progress or (lambda done, total, label: None)
    total = 2 * len(layouts)
    compiled = []
    for i, (h, f, t, s, e) in enumerate(layouts):
        compiled.append(compile(model, h, weights=f, kv_cache=kv_cache, tp=t, pp=s, engine=engine, ep=e))
        report(i + 1, total, f"compiling {compiled[-1].hw.id}")
    out = []
    for i, c in enumerate(compiled):
        out.append(evaluate(c, b, p, d, g))
        report(len(layouts) + i + 1, total, f"{c.hw.id} {c.fmt.id} tp {c.tp} pp {c.pp}")
    return out


def pareto_front(per_user: np.ndarray, per_device: np.ndarray) -> np.ndarray:
    """Indices of the points that no other point beats on both tok/s per user and tok/s per device (the serving
    trade-off curve), in order of rising tok/s per user."""
    x, y = np.asarray(per_user, dtype=float).reshape(-1), np.asarray(per_device, dtype=float).reshape(-1)
    order = np.lexsort((-y, -x))  # fastest per user first; ties: more per device first
    ys = y[order]
    before = np.concatenate([[-np.inf], np.maximum.accumulate(ys)[:-1]])
    return order[ys > before][::-1]
