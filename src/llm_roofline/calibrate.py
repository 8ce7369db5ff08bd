"""Engine efficiency profiles fitted to public measurements, and their honest (leave-one-source-out) error.

A profile has twelve numbers with a physical meaning, used by the estimate in place of the device-class defaults:
  bandwidth_efficiency   fraction of peak memory bandwidth the engine's decode kernels reach
  compute_efficiency     fraction of the peak matmul rate its prefill reaches (for the format's matmul dtype)
  step_overhead_us       fixed time per decode step (launches, graph build, sampling, host sync)
  prefill_overhead_us    fixed time per prefill pass (request admission, tokenisation, the first graph build)
  allreduce_us           fixed latency of one tensor-parallel all-reduce over a scale-up link (NVLink, Infinity
                         Fabric: launch and synchronisation), on top of its bytes over the link and NCCL's latency per
                         ring step (2(N-1) steps over N devices; roofline.allreduce_hop_us); allreduce_pcie_us the
                         same over PCIe
  launch_us_per_layer    per layer, the host's cost of launching a decode step's kernels one by one, paid where the
                         engine does not replay the step as one captured graph (engines.replays_graph: llama.cpp
                         before CUDA graphs, on GPUs they were not enabled for, and on its other backends)
  bw_factor_8bit, bw_factor_4bit  multipliers of the bandwidth efficiency for 8-bit and <= 6-bit weight formats,
                         whose decode kernels spend time dequantising (shared by all engines, learnt from the
                         contrast between formats within each engine, alternating with the hierarchy below)
  bw_factor_hbm          multiplier of the bandwidth efficiency on HBM devices, fitted where an engine or family
                         level has decode rows on both HBM and other memory (HBM's bandwidth-delay product is
                         several times GDDR's, so a kernel with too few bytes in flight reaches less of it); a
                         property of an engine's kernels, so the default profile keeps 1
  unpack_cycles_per_weight  SM (compute-unit) cycles a decode kernel spends unpacking and scaling each
                         block-quantised weight, added to its memory time: weights / Hardware.sm_cycles_per_s.
                         Dequantisation is arithmetic, so its cost follows the compute units, not the bandwidth
                         (an A100 has 1.5x a 4090's SM cycles per byte, an M2 Ultra a third of them)
  int8_compute_efficiency  fraction of Hardware.quantized_matmul_tops reached by kernels that quantise activations
                         to int8 (llama.cpp's MMQ path for ggml formats)
Profiles form a hierarchy: engine (llama.cpp-cuda) -> family (llama.cpp) -> default. llama.cpp's Metal, Vulkan
and ROCm backends are families of their own (other kernels than CUDA's, engines.FAMILIES); the default profile
weighs every engine project (engines.project: llama.cpp with all its backends, TensorRT-LLM with NIM) the same. A level is fitted only on
the parameters its rows inform (decode rows: bandwidth and overhead; prefill rows: compute; tensor-parallel rows:
all-reduce latency) and inherits the rest. The objective is the mean absolute log error of the estimate over the
level's rows, minimised by coordinate descent on grids bounded by physical ranges (BOUNDS, with their reasons): a few
parameters, no per-row or per-model constant. A level whose rows all come from one source keeps half of its
departure from its parent (geometrically; SHRINK): one source cannot tell its engine from its own setup.
Time-to-first-token rows under client concurrency (queueing, not modelled) are validated but not fitted.
Ranges: the RANGE_PERCENTILES (2.5th and 97.5th) of the leave-one-source-out residuals, per engine family and
metric kind, as an 80% range: sources differ from one another more than rows within a source do, so a nominal
80% band (p10-p90) covered only 72% of decode and 68% of prefill rows of held-out sources; the level is the one
whose held-out-source coverage (held_out_coverage, reported) comes closest to 80% for both kinds.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from .engines import PARAMS, Profile, family, project, format_class, lookup, metric_kind
from .files import write_json
from .timing import mean_of_max
from .validate import METRICS, TIME_METRICS, RowModel

# Physical ranges, so that a fit cannot turn one source's quirk into a constant of nature:
#   step_overhead_us <= 2 ms: a decode step's fixed host work (scheduling, input preparation, sampling, one graph
#     launch); vLLM's V1 design post (blog.vllm.ai, 2025-01-24) calls it pronounced beside the ~5 ms GPU step of
#     Llama-8B on an H100, i.e. a fraction of that, and engines that overlap it hide most of it;
#   launch_us_per_layer <= 60 µs: a llama.cpp decode layer launches about 12-20 kernels (norms, matmuls, rope,
#     attention, adds, activation) at a few µs each from the host (NVIDIA, "Getting Started with CUDA Graphs",
#     2019: launch overhead of a few µs per kernel, the cost graphs remove);
#   prefill_overhead_us <= 10 ms: per pass, request admission, tokenisation of a short prompt and a graph build;
#   all-reduce latencies: NCCL's base latency (3 µs) up to what PCIe round trips allow.
BOUNDS = {"bandwidth_efficiency": (0.2, 1.0), "compute_efficiency": (0.05, 1.0), "step_overhead_us": (0.0, 2000.0),
          "allreduce_us": (3.0, 50.0), "int8_compute_efficiency": (0.02, 1.0), "prefill_overhead_us": (0.0, 10000.0),
          "allreduce_pcie_us": (3.0, 1000.0), "bw_factor_8bit": (0.4, 1.25), "bw_factor_4bit": (0.4, 1.25),
          "bw_factor_hbm": (0.3, 1.25), "unpack_cycles_per_weight": (0.0, 0.2), "launch_us_per_layer": (0.0, 60.0)}
SHRINK = 0.5  # a level informed by one source keeps this share of its departure from its parent (partial pooling)
LINEAR = ("bandwidth_efficiency", "compute_efficiency", "int8_compute_efficiency", "bw_factor_8bit", "bw_factor_4bit",
          "bw_factor_hbm")  # fractions and factors: 1 at the ceiling (the rest, times and cycles, are 0 there)
LINEAR_GRID = (*LINEAR, "unpack_cycles_per_weight")  # searched on an even grid (the rest on a geometric one)
DEFAULT = {"bandwidth_efficiency": 0.8, "compute_efficiency": 0.6, "step_overhead_us": 200.0, "allreduce_us": 5.0,
           "int8_compute_efficiency": 0.3, "prefill_overhead_us": 200.0, "allreduce_pcie_us": 5.0,
           "bw_factor_8bit": 1.0, "bw_factor_4bit": 1.0, "bw_factor_hbm": 1.0,
           "unpack_cycles_per_weight": 0.0, "launch_us_per_layer": 0.0}
MIN_ROWS = 8  # a level with fewer rows than this inherits its parent's profile
DECODE_KIND = ("decode_tok_s", "decode_throughput_tok_s", "tpot_ms")


# ---------------------------------------------------------------------------------------------- vectorised rows


class RowSet:
    """All rows' unit times in flat arrays: the estimate of every row for per-row parameters at once, with the
    formulas of timing.DeviceStep.sides and timing.mean_of_max."""

    def __init__(self, models: list[RowModel]):
        self.models = models
        self.n = n = len(models)
        cat = lambda xs, w=1: np.concatenate(xs) if xs else np.zeros((0, w) if w > 1 else 0)  # noqa: E731
        for phase in ("d", "p"):
            units = [(r, getattr(rm, "decode" if phase == "d" else "prefill")) for r, rm in enumerate(models)]
            units = [(r, u) for r, u in units if u is not None]
            setattr(self, f"{phase}_k", cat([u.kernel for _, u in units], 2))
            setattr(self, f"{phase}_m", cat([u.memory for _, u in units], 2))
            setattr(self, f"{phase}_u", cat([u.unpack for _, u in units], 2))
            setattr(self, f"{phase}_i8", cat([u.int8 for _, u in units]).astype(bool))
            setattr(self, f"{phase}_w", cat([u.weight for _, u in units]))
            setattr(self, f"{phase}_seg", cat([np.full(u.weight.size, r) for r, u in units]).astype(int))
            for field, name in (("link_s", "link"), ("instances", "ar"), ("hops_s", "hops"), ("ceiling_s", "ceiling"),
                                ("launch_layers", "nl"), ("factor", "factor")):
                arr = np.ones(n) if field == "factor" else np.zeros(n)
                for r, u in units:
                    arr[r] = getattr(u, field)
                setattr(self, f"{phase}_{name}", arr)
        self.hbm = np.array([rm.hbm for rm in models], dtype=bool)
        self.pcie = np.array([rm.pcie for rm in models], dtype=bool)
        ms = [rm.m for rm in models]
        self.metric = np.array([METRICS.index(m.metric) for m in ms])
        self.batch = np.array([m.batch for m in ms], dtype=float)
        self.prompt = np.array([m.prompt_tokens for m in ms], dtype=float)
        self.gen = np.array([m.gen_tokens or 1 for m in ms], dtype=float)
        self.measured = np.array([m.value for m in ms])
        self.tensor = np.array([m.parallel == "tensor" for m in ms])
        self.fmt_class = np.array([format_class(m.weights) for m in ms])

    def _phase(self, phase: str, bw, c, c8, cpw) -> np.ndarray:
        """Sum over each row's groups (and segments) of the run mean of max(compute, memory + unpack)."""
        k, m, u, i8, w, seg = (getattr(self, f"{phase}_{x}") for x in ("k", "m", "u", "i8", "w", "seg"))
        eta_c = np.where(i8, c8[seg], c[seg])[:, None]
        compute = k / eta_c
        memory = m / bw[seg][:, None] + cpw[seg][:, None] * u
        mean, _ = mean_of_max(compute[:, 0], memory[:, 0], compute[:, 1], memory[:, 1])
        return np.bincount(seg, mean * w, self.n)

    def values(self, params: np.ndarray) -> np.ndarray:
        """params: (n, len(PARAMS)) per row -> the metric each row reports."""
        bw, c, ov, ar, c8, pov, ar_pcie, f8, f4, fh, cpw, lpl = (params[:, i] for i in range(len(PARAMS)))
        bw = np.minimum(1.0, bw * np.choose(self.fmt_class, [np.ones(self.n), f8, f4]) * np.where(self.hbm, fh, 1.0))
        ar = np.where(self.pcie, ar_pcie, ar) * 1e-6
        step = (self._phase("d", bw, c, c8, cpw) + self.d_link / bw + self.d_ar * ar + self.d_hops + ov * 1e-6
                + lpl * 1e-6 * self.d_nl)
        ttft = ((self._phase("p", bw, c, c8, cpw) + self.p_link / bw + self.p_ar * ar + self.p_hops) * self.p_factor
                + pov * 1e-6)
        return self._metric(step, ttft)

    def _metric(self, step: np.ndarray, ttft: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            table = [1 / step, self.batch / step, self.batch * self.prompt / ttft, ttft * 1e3, step * 1e3,
                     self.batch * self.gen / (ttft + (self.gen - 1) * step)]
        return np.choose(self.metric, table)

    def ceilings(self) -> np.ndarray:
        """Each row's ceiling, from the same compiled step and timing as predict's (no efficiency, no overhead)."""
        return self._metric(self.d_ceiling, self.p_ceiling)


def log_errors(pred: np.ndarray, measured: np.ndarray) -> np.ndarray:
    return np.abs(np.log(pred / measured))


# ---------------------------------------------------------------------------------------------- fitting


def _fit_level(rows: RowSet, start: Profile, balance: bool = False) -> Profile:
    """Coordinate descent of the parameters these rows inform, from the parent's profile. With balance, every
    engine family weighs the same (the default profile describes a typical engine, not the most measured one)."""
    decode_ids = [METRICS.index(m) for m in DECODE_KIND + ("throughput_tok_s",)]
    prefill_ids = [METRICS.index(m) for m in ("prefill_tok_s", "ttft_ms", "throughput_tok_s")]
    active = []
    if np.isin(rows.metric, decode_ids).any():
        decode_rows = np.isin(rows.metric, decode_ids)
        if (rows.d_nl > 0).any():
            active += ["launch_us_per_layer"]
        active += ["bandwidth_efficiency"]
        # A step launched kernel by kernel costs launch_us_per_layer x layers on top of the fixed step overhead;
        # only steps replayed as one graph show the fixed part alone, so only levels with such rows refit it (the
        # rest inherit it: two llama.cpp models of 32 and 80 layers cannot tell a fixed cost from a per-layer one)
        if (decode_rows & (rows.d_nl == 0)).any():
            active += ["step_overhead_us"]
        if not balance and (rows.hbm & decode_rows).any() and (~rows.hbm & decode_rows).any():
            active += ["bw_factor_hbm"]  # only a level measured on both kinds of memory can tell them apart
        if (rows.d_u > 0).any() or (rows.p_u > 0).any():
            active += ["unpack_cycles_per_weight"]
    if np.isin(rows.metric, prefill_ids).any():
        active += ["prefill_overhead_us"]
        if rows.p_i8.any():
            active += ["int8_compute_efficiency"]
        if (~rows.p_i8 & (rows.p_k[:, 0] > rows.p_m[:, 0])).any():
            active += ["compute_efficiency"]
    if (rows.tensor & ~rows.pcie).any():
        active += ["allreduce_us"]
    if (rows.tensor & rows.pcie).any():
        active += ["allreduce_pcie_us"]
    # Dequantisation factors are not fitted per level (see _fit_format_factors): one engine's sources rarely hold
    # the same model in several formats, so a per-engine factor would fit a source's quirks.
    # Each metric kind (and with balance each family) counts equally: many rows of one kind do not drown the rest.
    kinds = np.array([metric_kind(METRICS[i]) for i in rows.metric])
    fams = np.array([project(rm.m.engine) for rm in rows.models])
    groups = [fams == f for f in sorted(set(fams))] if balance else [np.ones(rows.n, dtype=bool)]
    cells = [g & (kinds == k) for g in groups for k in ("decode", "prefill") if (g & (kinds == k)).any()]
    theta = dict(zip(PARAMS, start.params()))

    def loss(th: dict) -> float:
        err = log_errors(rows.values(np.tile([th[k] for k in PARAMS], (rows.n, 1))), rows.measured)
        return float(np.mean([err[c].mean() for c in cells]))

    best = loss(theta)
    for _ in range(4):
        improved = False
        for name in active:
            lo, hi = BOUNDS[name]
            grid = np.linspace(lo, hi, 41) if name in LINEAR_GRID else \
                np.concatenate([[0.0] if lo == 0 else [], np.geomspace(max(lo, 1.0), hi, 60)])
            for value in grid:
                trial = {**theta, name: float(value)}
                value_loss = loss(trial)
                if value_loss < best - 1e-12:
                    best, theta, improved = value_loss, trial, True
        if not improved:
            break
    return Profile(**theta, rows=rows.n)


def _fit_hierarchy(rows: RowSet, train: np.ndarray, start: Profile) -> dict[str, Profile]:
    engines = np.array([rm.m.engine for rm in rows.models])
    subset = lambda idx: RowSet([rows.models[i] for i in idx])  # noqa: E731
    sources = np.array([rm.m.source_group for rm in rows.models])

    def level(idx, parent: Profile) -> Profile:
        fitted = _fit_level(subset(idx), parent)
        return fitted if len(set(sources[idx])) > 1 else _shrink(fitted, parent)

    profiles = {"default": _fit_level(subset(train), start, balance=True)}
    for fam in sorted({family(e) for e in engines[train]}):
        idx = train[np.array([family(e) == fam for e in engines[train]])]
        profiles[fam] = level(idx, profiles["default"]) if len(idx) >= MIN_ROWS else profiles["default"]
    for eng in sorted(set(engines[train])):
        idx = train[engines[train] == eng]
        parent = profiles[family(eng)]
        profiles[eng] = level(idx, parent) if len(idx) >= MIN_ROWS and eng != family(eng) else parent
    return profiles


def _shrink(fitted: Profile, parent: Profile) -> Profile:
    """One source's fit pulled halfway back to the parent's (geometrically for positive values): a single
    source cannot tell its engine's behaviour from its own setup (build, driver, flags)."""
    out = {}
    for name, f, p in zip(PARAMS, fitted.params(), parent.params()):
        out[name] = p ** (1 - SHRINK) * f ** SHRINK if f > 0 and p > 0 else p + SHRINK * (f - p)
    return Profile(**out, rows=fitted.rows)


def _fit_format_factors(rows: RowSet, profiles: dict[str, Profile]) -> dict[str, float]:
    """The dequantisation factors, with every row under its own engine's profile and each profile's bandwidth
    efficiency free to follow the factor (the two trade off: an engine measured mostly on 4-bit weights would
    otherwise keep the factor inside its efficiency). The factor is then learnt from contrasts within engines
    (gpt-fast bf16 against int4, llama.cpp f16 against q4), not from one engine's formats against another
    engine's efficiency. Decode rows only; every engine family weighs the same."""
    params = row_params(rows, profiles)
    decode = np.isin(rows.metric, [METRICS.index(m) for m in DECODE_KIND])
    keys = np.array([lookup(profiles, rm.m.engine)[0] for rm in rows.models])
    fams = np.array([project(rm.m.engine) for rm in rows.models])
    per_family = Counter(fams[decode])
    weight = np.array([1 / max(1, per_family[f]) for f in fams])  # each family's decode rows sum to 1
    groups = []  # one per profile in use: its decode rows, their RowSet and weights
    for key in sorted(set(keys[decode])):
        idx = np.where(decode & (keys == key))[0]
        groups.append((idx, RowSet([rows.models[i] for i in idx]), weight[idx]))
    bw_col = PARAMS.index("bandwidth_efficiency")
    bw_grid = np.linspace(*BOUNDS["bandwidth_efficiency"], 41)
    out = {}
    for cls, name in ((1, "bw_factor_8bit"), (2, "bw_factor_4bit")):
        col = PARAMS.index(name)
        if not ((rows.fmt_class == cls) & decode).any():
            out[name] = float(params[0, col])
            continue
        best, best_value = np.inf, 1.0
        for value in np.linspace(*BOUNDS[name], 35):
            loss = 0.0
            for idx, sub, w in groups:
                trial = params[idx].copy()
                trial[:, col] = value
                losses = []
                for bw in bw_grid:  # the profile's efficiency at its best for this factor
                    trial[:, bw_col] = bw
                    losses.append(float(w @ log_errors(sub.values(trial), sub.measured)))
                loss += min(losses)
            if loss < best - 1e-12:
                best, best_value = loss, float(value)
        out[name] = best_value
        params[:, col] = best_value
    return out


def fit_profiles(rows: RowSet, train: np.ndarray | None = None, rounds: int = 1) -> dict[str, Profile]:
    """default -> families -> engines, each level fitted on its training rows, alternating with the format
    factors (shared by every engine, fitted within engines); the last hierarchy is fitted with the last
    factors, so every profile is consistent with them."""
    from dataclasses import replace

    train = np.arange(rows.n) if train is None else train
    # A request's time to first token under client concurrency includes queueing behind the other requests, which
    # the estimate (its own prefill) leaves out: such rows are validated but not fitted, so they cannot pull an
    # engine's compute efficiency down to stand in for a queue.
    queued = (rows.metric == METRICS.index("ttft_ms")) & (rows.batch > 1)
    train = train[~queued[train]]
    start = Profile(**DEFAULT)
    profiles = _fit_hierarchy(rows, train, start)
    for _ in range(rounds):
        start = replace(start, **_fit_format_factors(RowSet([rows.models[i] for i in train]), profiles))
        profiles = _fit_hierarchy(rows, train, start)
    return profiles


def row_params(rows: RowSet, profiles: dict[str, Profile]) -> np.ndarray:
    return np.array([lookup(profiles, rm.m.engine)[1].params() for rm in rows.models])


def leave_one_source_out(rows: RowSet, progress=None) -> np.ndarray:
    """Each row's estimate from profiles fitted without the row's own source. progress(done, total, source) is
    called after each refit."""
    groups = np.array([rm.m.source_group for rm in rows.models])
    pred = np.zeros(rows.n)
    order = sorted(set(groups))
    for done, g in enumerate(order, 1):
        held = np.where(groups == g)[0]
        profiles = fit_profiles(rows, np.where(groups != g)[0])
        pred[held] = rows.values(row_params(rows, profiles))[held]
        if progress is not None:
            progress(done, len(order), g)
    return pred


def _speed_ratios(rows: RowSet, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """measured / estimate as a speed (> 1: faster than estimated), and each row's engine family and kind."""
    ratio = rows.measured / pred
    time_metric = np.isin(rows.metric, [METRICS.index(m) for m in TIME_METRICS])
    fams = np.array([family(rm.m.engine) for rm in rows.models])
    kinds = np.array([metric_kind(rm.m.metric) for rm in rows.models])
    return np.where(time_metric, 1 / ratio, ratio), fams, kinds


RANGE_PERCENTILES = (2.5, 97.5)


def _ranges(speed_ratio: np.ndarray, fams: np.ndarray, kinds: np.ndarray) -> dict[str, dict[str, list[float]]]:
    out: dict[str, dict[str, list[float]]] = {}
    for fam in [*sorted(set(fams)), "default"]:
        for kind in ("decode", "prefill"):
            sel = (kinds == kind) & ((fams == fam) if fam != "default" else True)
            if sel.sum() >= 5:
                out.setdefault(fam, {})[kind] = [float(np.percentile(speed_ratio[sel], q))
                                                 for q in RANGE_PERCENTILES]
    return out


def residual_ranges(rows: RowSet, pred: np.ndarray) -> dict[str, dict[str, list[float]]]:
    """The 80% range (RANGE_PERCENTILES) of measured/estimate per engine family and metric kind (and overall)."""
    return _ranges(*_speed_ratios(rows, pred))


def held_out_coverage(rows: RowSet, pred: np.ndarray) -> dict[str, dict[str, float]]:
    """How often a held-out source's rows fall inside an 80% range built without that source: the ranges from
    the other sources' leave-one-source-out residuals, applied as predict applies them (family, else default)."""
    ratio, fams, kinds = _speed_ratios(rows, pred)
    groups = np.array([rm.m.source_group for rm in rows.models])
    inside = np.zeros(rows.n, dtype=bool)
    for g in sorted(set(groups)):
        held = groups == g
        ranges = _ranges(ratio[~held], fams[~held], kinds[~held])
        for i in np.where(held)[0]:
            lo, hi = (ranges.get(fams[i], {}).get(kinds[i]) or ranges.get("default", {}).get(kinds[i])
                      or (1.0, 1.0))
            inside[i] = min(lo, 1.0) <= ratio[i] <= max(hi, 1.0)  # widened to hold the estimate, as speed_range
    return {kind: {"covered_pct": round(100 * float(inside[kinds == kind].mean()), 1), "n": int((kinds == kind).sum())}
            for kind in ("decode", "prefill") if (kinds == kind).any()}


def save_profiles(path: str | Path, profiles: dict[str, Profile], ranges: dict, meta: dict) -> None:
    data = {"meta": meta, "profiles": {k: v.to_dict() for k, v in profiles.items()}, "ranges": ranges}
    write_json(path, data, indent=1, sort_keys=True)


def calibrate(data: list[str | Path], out: str | Path, progress=None) -> dict:
    """Fit the profiles on every predictable row of `data`, measure them leave-one-source-out, write `out`."""
    import datetime
    import hashlib

    from .errors import UserError
    from .validate import read_measurements, row_model, summarize_errors

    rows, skipped = [], []
    for path in data:
        got, miss = read_measurements(path)
        rows += got
        skipped += miss
    if len(rows) < MIN_ROWS:
        raise UserError(f"calibration needs at least {MIN_ROWS} predictable rows, got {len(rows)}")
    sources = {m.source_group for m in rows}
    if len(sources) < 2:
        raise UserError(f"calibration needs rows from at least two sources (its error is measured with each source "
                        f"held out); all {len(rows)} rows come from {next(iter(sources))!r}")
    rowset = RowSet([row_model(m) for m in rows])
    profiles = fit_profiles(rowset)
    loso = leave_one_source_out(rowset, progress)
    summary = {metric: {k: round(v, 2) if isinstance(v, float) else v for k, v in s.items()}
               for metric, s in summarize_errors(rowset, loso).items()}
    meta = {
        "fitted": datetime.date.today().isoformat(),
        "data": [{"file": Path(p).name, "sha256": hashlib.sha256(Path(p).read_bytes()).hexdigest()} for p in data],
        "rows_used": len(rows), "rows_skipped": len(skipped),
        "sources": sorted({m.source_group for m in rows}),
        "leave_one_source_out": summary,
        "leave_one_source_out_range_coverage": held_out_coverage(rowset, loso),
        "method": "calibrate.py docstring; docs/accuracy.md",
    }
    save_profiles(out, profiles, residual_ranges(rowset, loso), meta)
    return meta
