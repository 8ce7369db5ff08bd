"""Predicted against measured: public measurements (CSV) predicted row by row, with the error shown.

Each row is predicted from the row alone: its per-device bandwidth, fp16 rate and memory (a catalog
`hardware_id` adds the device's other peaks and its class), devices and parallel mode, model, formats, batch and
lengths, and the engine (whose efficiency profile the estimate uses). Column meanings: docs/accuracy.md; the
shipped default data is `catalog/measurements_dev.csv`.

Every row goes through the same compiled step and timing as `predict` (step.py, timing.py): its groups' unit times
are taken once at 100% efficiency (RowModel), and calibrate.RowSet applies any efficiency profile to all rows at
once with the same formulas, which `calibrate` does thousands of times while fitting.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from . import catalog
from .architecture import load_model
from .engines import replays_graph
from .errors import UserError
from .formats import kv_bits, load_format
from .hardware import Hardware, load_hardware
from .memory import memory_budget
from .step import CompiledStep
from .timing import (DeviceStep, Efficiency, UnitTimes, decode_times, decode_units, pipelined_decode_ceiling,
                     prefill_pipeline_factor, prefill_times)

REQUIRED = ("source", "engine", "hardware", "bandwidth_gbps", "devices", "parallel", "model", "weights", "batch",
            "prompt_tokens", "kv_depth", "gen_tokens", "metric", "value")
OPTIONAL = ("hardware_id", "fp16_tflops", "memory_gb", "kv_cache", "flash_attention", "notes", "build_date")
# llama.cpp's CUDA backend multiplied quantised weights in prefill by dequantising them to fp16 for cuBLAS on
# every GPU with tensor cores until int8 tensor-core MMQ became the default on 2024-06-23
# (ggml-org/llama.cpp#8075); rows whose build_date is earlier are modelled on that fp16 path.
LLAMA_CPP_CUDA_MMQ_DEFAULT = "2024-06"
METRICS = ("decode_tok_s", "decode_throughput_tok_s", "prefill_tok_s", "ttft_ms", "tpot_ms", "throughput_tok_s")
TIME_METRICS = ("ttft_ms", "tpot_ms")
# A row whose device has no stated fp16 rate and no catalog record gets this fp16 ridge point (FLOP per byte):
# the upper end of the catalog's consumer GPUs (RTX 3090 76, 5090 117, 7900 XTX 128, 4080 136, 4090 164), so
# that the ceiling stays a bound. NVIDIA cards get int8 at 4x that rate (Ampere and Ada GeForce: int8 dense =
# 4 x the FP32-accumulate fp16 rate); other vendors int8 = fp16.
DEFAULT_RIDGE = 160.0
CEILING_TOLERANCE = 0.03
# "A100 80GB" / "H100 80GB" without SXM or PCIe: take the faster variant's figures (documented default).
FORM_FACTOR_UNSTATED = {"A100 80GB": "nvidia-a100-sxm4-80gb", "H100 80GB": "nvidia-h100-sxm5-80gb"}  # measured faster than the ceiling by more than 3% is a violation


@dataclass(frozen=True)
class Measurement:
    line: int  # line number in the CSV (header = 1)
    source: str
    engine: str
    hardware: str
    hardware_id: str
    bandwidth_gbps: float
    fp16_tflops: float | None
    memory_gb: float | None
    devices: int
    parallel: str
    model: str
    weights: str
    kv_cache: str
    batch: int
    prompt_tokens: int
    kv_depth: int
    gen_tokens: int | None
    metric: str
    value: float
    flash_attention: str
    defaults_used: tuple[str, ...] = ()
    notes: str = ""
    build_date: str = ""  # YYYY-MM (or YYYY) of the engine build, where the source states it

    @property
    def source_group(self) -> str:
        return source_group(self.source)


def source_group(source: str) -> str:
    """One publication: a URL up to its page, or a repository name (owner/repo)."""
    m = re.match(r"https?://[^/]+(/[^/?#\s]+){0,4}", source)
    if m:
        return m.group(0)
    return source.split()[0] if source.split() else source


@dataclass(frozen=True)
class Skipped:
    line: int
    reason: str


# ---------------------------------------------------------------------------------------------------- reading


def read_measurements(path: str | Path) -> tuple[list[Measurement], list[Skipped]]:
    """Rows that can be predicted, and the rest with the reason; never a silent drop."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"measurements file {str(path)!r} does not exist")
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            missing = [c for c in REQUIRED if c not in header]
            if missing:
                raise UserError(f"{path}: missing column(s) {', '.join(missing)}; the columns are "
                                f"{', '.join(REQUIRED + OPTIONAL)} (docs/accuracy.md describes them)")
            raw = list(reader)
    except (UnicodeDecodeError, csv.Error, OSError) as exc:
        raise UserError(f"{path}: not a readable CSV ({exc})") from None
    rows, skipped = [], []
    for i, rec in enumerate(raw, start=2):
        if None in rec or any(v is None for v in rec.values()):  # DictReader's marks of a long or short row
            fields = len(rec) - (None in rec) + len(rec.get(None) or ()) - sum(v is None for v in rec.values())
            skipped.append(Skipped(i, f"row has {fields} fields, the header {len(header)}"))
            continue
        try:
            rows.append(_parse(rec, i))
        except UserError as exc:
            skipped.append(Skipped(i, str(exc)))
    return rows, skipped


def _number(rec: dict, key: str, kind=float, required: bool = True, minimum: float | None = None):
    text = (rec.get(key) or "").strip()
    if not text:
        if required:
            raise UserError(f"empty {key}")
        return None
    try:
        number = float(text)
    except ValueError:
        raise UserError(f"{key} {text!r} is not a number") from None
    if not math.isfinite(number) or (minimum is not None and number < minimum) or abs(number) > 1e15:
        raise UserError(f"{key} {text!r} is out of range")
    if kind is int and number != int(number):
        raise UserError(f"{key} {text!r} is not a whole number")
    return int(number) if kind is int else number


def _parse(rec: dict, line: int) -> Measurement:
    defaults: list[str] = []
    metric = (rec.get("metric") or "").strip()
    if metric not in METRICS:
        raise UserError(f"unknown metric {metric!r} (known: {', '.join(METRICS)})")
    model = (rec.get("model") or "").strip()
    if model not in catalog.model_ids():
        load_model(model)  # raises with the closest names
    weights = (rec.get("weights") or "").strip()
    load_format(weights)
    kv = (rec.get("kv_cache") or "").strip()
    if kv:
        kv_bits(kv)
    else:
        defaults.append("kv_cache f16")
    parallel = (rec.get("parallel") or "none").strip()
    if parallel not in ("none", "tensor", "layer"):
        raise UserError(f"parallel must be none, tensor or layer, got {parallel!r}")
    hid = (rec.get("hardware_id") or "").strip()
    bandwidth = _number(rec, "bandwidth_gbps", required=False, minimum=1e-9)
    if bandwidth is None and not hid:
        for family, fallback in FORM_FACTOR_UNSTATED.items():
            if family in rec.get("hardware", "") and "form factor not stated" in rec.get("hardware", ""):
                hid = fallback
                defaults.append(f"form factor not stated: {fallback} (the faster variant, so the ceiling stays "
                                "a bound)")
    if bandwidth is None:
        if not hid:
            raise UserError("bandwidth_gbps empty and no hardware_id: the device's bandwidth is not stated")
        bandwidth = load_hardware(hid).bandwidth_gbps
        defaults.append("bandwidth from the catalog")
    gen = _number(rec, "gen_tokens", int, required=False, minimum=0)
    if gen is None and metric in ("decode_tok_s", "decode_throughput_tok_s", "tpot_ms"):
        defaults.append("gen_tokens empty: steady decode at kv_depth")
    if metric == "throughput_tok_s" and not gen:
        raise UserError("throughput_tok_s needs gen_tokens")
    prompt = _number(rec, "prompt_tokens", int, required=False, minimum=0)
    if prompt is None:
        defaults.append("prompt_tokens empty: 0")
    depth = _number(rec, "kv_depth", int, required=False, minimum=0)
    if depth is None:
        defaults.append("kv_depth empty: 0")
    if metric in ("prefill_tok_s", "ttft_ms", "throughput_tok_s") and not prompt:
        raise UserError(f"{metric} needs prompt_tokens > 0")
    return Measurement(
        line=line, source=rec.get("source", ""), engine=(rec.get("engine") or "").strip().lower(),
        hardware=rec.get("hardware", ""), hardware_id=hid, bandwidth_gbps=bandwidth,
        fp16_tflops=_number(rec, "fp16_tflops", required=False, minimum=1e-9),
        memory_gb=_number(rec, "memory_gb", required=False, minimum=1e-9),
        devices=_number(rec, "devices", int, minimum=1), parallel=parallel, model=model, weights=weights,
        kv_cache=kv or "f16", batch=_number(rec, "batch", int, minimum=1), prompt_tokens=prompt or 0,
        kv_depth=depth or 0, gen_tokens=gen, metric=metric, value=_number(rec, "value", minimum=1e-12),
        flash_attention=(rec.get("flash_attention") or "unknown").strip(), defaults_used=tuple(defaults),
        notes=rec.get("notes") or "", build_date=_build_date(rec),
    )


def _build_date(rec: dict) -> str:
    text = (rec.get("build_date") or "").strip()
    if text and not re.fullmatch(r"\d{4}(-\d{2})?", text):
        raise UserError(f"build_date {text!r} is not YYYY-MM or YYYY")
    return text


# ---------------------------------------------------------------------------------------------------- devices

_CLASS_WORDS = (("epyc", "server_cpu"), ("xeon", "server_cpu"), ("graviton", "server_cpu"), ("altra", "server_cpu"),
                ("ryzen ai max", "apu"), ("threadripper", "desktop_cpu"), ("ryzen", "desktop_cpu"),
                ("core i", "desktop_cpu"), ("core ultra", "desktop_cpu"), (" cpu", "desktop_cpu"),
                ("jetson", "edge_soc"), ("apple", "apple_soc"), ("m1", "apple_soc"), ("m2", "apple_soc"),
                ("m3", "apple_soc"), ("m4", "apple_soc"), ("rtx", "consumer_gpu"), ("gtx", "consumer_gpu"),
                ("radeon", "consumer_gpu"), ("rx ", "consumer_gpu"), ("arc", "consumer_gpu"),
                ("titan", "consumer_gpu"), ("quadro", "workstation_gpu"), ("instinct", "datacenter_gpu"),
                ("mi", "datacenter_gpu"))  # first match wins; none: a datacenter GPU


def row_hardware(m: Measurement) -> Hardware:
    """The device as the row states it; a catalog id adds its other figures; gaps get stated defaults."""
    if m.hardware_id:
        base = load_hardware(m.hardware_id)
    else:
        name = m.hardware.lower()
        category = next((c for word, c in _CLASS_WORDS if word in name), "datacenter_gpu")
        vendor = "NVIDIA" if "nvidia" in name or "geforce" in name else ""
        base = Hardware(id=f"row:{m.hardware}", name=m.hardware, category=category, memory_gb=m.memory_gb or 1e6,
                        bandwidth_gbps=m.bandwidth_gbps, peak_tflops={}, vendor=vendor)
    peaks = dict(base.peak_tflops)
    guessed = []  # for the estimate only: the ceiling does not bound compute with a peak nobody published
    if m.fp16_tflops:
        peaks["fp16"] = m.fp16_tflops
    elif not peaks.get("fp16"):
        peaks["fp16"] = DEFAULT_RIDGE * m.bandwidth_gbps / 1e3
        guessed.append("fp16")
    if not m.hardware_id and base.category not in ("apple_soc", "server_cpu", "desktop_cpu"):
        if "int8" not in peaks:
            guessed.append("int8")
        peaks.setdefault("int8", peaks["fp16"] * (4 if base.vendor == "NVIDIA" else 1))
    memory = m.memory_gb or base.memory_gb
    link = None if "no nvlink" in m.notes.lower() else base.link_gbps_bidir  # the row says it ran over PCIe
    return replace(base, bandwidth_gbps=m.bandwidth_gbps, peak_tflops=peaks, memory_gb=memory, link_gbps_bidir=link,
                   estimated_peaks=tuple(guessed))


# ---------------------------------------------------------------------------------------------------- row models


@dataclass(frozen=True)
class PhaseUnits:
    """One row's phase at 100% efficiency, flattened over its roofline groups (and, for decode, the segments of
    the run): each group's estimate is max(kernel / eta_c, memory / eta_bw + cycles x unpack) at a segment's two
    ends (timing.mean_of_max), weighted by the segment's share of the run. Links and hand-offs: their seconds
    over the link (/ eta_bw), a fixed latency per instance (the profile's) and the ring-step latencies."""

    kernel: np.ndarray  # (entries, 2): at the two ends (prefill: the same value twice)
    memory: np.ndarray
    unpack: np.ndarray
    int8: np.ndarray  # (entries,) the group runs on quantised-activation kernels (int8_compute_efficiency)
    weight: np.ndarray  # (entries,)
    link_s: float
    instances: float  # all-reduces and hand-offs in series, each paying the profile's fixed latency
    hops_s: float
    ceiling_s: float  # the phase's ceiling (a pipeline's best, timing.py)
    factor: float = 1.0  # a pipelined prefill's fill-and-drain factor on the estimate
    launch_layers: int = 0  # layers whose kernels are launched one by one (engines.replays_graph; decode only)


@dataclass(frozen=True)
class RowModel:
    """What a row needs, timed once: its prefill and/or decode (calibrate.RowSet evaluates them)."""

    m: Measurement
    prefill: PhaseUnits | None
    decode: PhaseUnits | None
    pcie: bool  # all-reduces cross PCIe rather than a scale-up link (NVLink, Infinity Fabric)
    hbm: bool  # the device's memory is HBM (Profile.bw_factor_hbm)
    fits: bool
    min_devices: int | None


def _phase_units(ds: DeviceStep, u: UnitTimes, ends: tuple[slice, slice], weight: np.ndarray, ceiling_s: float,
                 **kw) -> PhaseUnits:
    roof, link = ~ds.link[:, 0], ds.link[:, 0]
    pairs = lambda x: np.stack([x[roof][:, ends[0]], x[roof][:, ends[1]]], -1).reshape(-1, 2)  # noqa: E731
    n_entries = weight.size
    return PhaseUnits(pairs(u.kernel), pairs(u.memory), pairs(u.unpack),
                      np.repeat(ds.int8_path[roof, 0], n_entries // max(1, roof.sum())),
                      weight, float(u.link[link].max(1).sum()) if link.any() else 0.0,
                      float(ds.instances[link, 0].sum()), float(ds.hop_s[link, 0].sum()), ceiling_s, **kw)


def row_model(m: Measurement) -> RowModel:
    spec = load_model(m.model)
    fmt = load_format(m.weights)
    bits = kv_bits(m.kv_cache)
    hw = row_hardware(m)
    tp = m.devices if m.parallel == "tensor" else 1
    pp = m.devices if m.parallel == "layer" else 1
    unit = Efficiency(1.0, 1.0, 0.0, 0.0, "ceiling")
    prefill = None
    if m.metric in ("prefill_tok_s", "ttft_ms", "throughput_tok_s"):
        # A request's time to first token is its own prompt's prefill: with a batch (or client concurrency)
        # above one, servers interleave arrivals, and any queueing on top is not modelled.
        prompts = 1 if m.metric == "ttft_ms" else m.batch
        prefill_fmt = fmt
        if m.engine == "llama.cpp-cuda" and fmt.compute == "int8" and m.build_date and \
                m.build_date < LLAMA_CPP_CUDA_MMQ_DEFAULT and hw.tensor_cores:
            prefill_fmt = replace(fmt, compute="fp16")  # dequantise + fp16 cuBLAS then
        ds = DeviceStep(CompiledStep(spec, prefill_fmt, bits, tp, pp), hw)
        u = ds.unit_times(ds.step.evaluate(prompts, m.prompt_tokens, m.kv_depth), hw.bandwidth_gbps)
        ceiling = prefill_times(ds, unit, prompts, m.prompt_tokens, m.kv_depth, hw.bandwidth_gbps).ceiling_s
        roof = int((~ds.link).sum())
        prefill = _phase_units(ds, u, (slice(0, 1), slice(0, 1)), np.ones(roof), float(ceiling[0]),
                               factor=float(prefill_pipeline_factor(pp, m.prompt_tokens)))
    decode = None
    if m.metric in ("decode_tok_s", "decode_throughput_tok_s", "tpot_ms", "throughput_tok_s"):
        start = m.kv_depth + (m.prompt_tokens if m.metric == "throughput_tok_s" else 0)
        gen = m.gen_tokens or 1
        ds = DeviceStep(CompiledStep(spec, fmt, bits, tp, pp), hw)
        run = decode_units(ds, m.batch, start, gen, hw.bandwidth_gbps)
        ceiling = (pipelined_decode_ceiling(ds, unit, m.batch, start, gen, hw.bandwidth_gbps) if pp > 1 else
                   decode_times(ds, unit, m.batch, start, gen, hw.bandwidth_gbps, ceiling_only=True).ceiling_s)
        segments = run.points - 1
        roof = int((~ds.link).sum())
        decode = _phase_units(ds, run.units, (slice(0, segments), slice(1, segments + 1)),
                              np.tile(run.weight[:, 0], roof), float(ceiling[0]),
                              launch_layers=0 if replays_graph(m.engine, hw, m.build_date) else spec.n_layers)
    length = m.kv_depth + m.prompt_tokens + (m.gen_tokens or 0)
    mem = memory_budget(spec, fmt, bits, m.batch, max(m.prompt_tokens, 1), length, tp, hw.memory_gb,
                        hw.defaults.runtime_overhead_gb, pp)
    return RowModel(m, prefill, decode, not hw.link_gbps_bidir, hw.hbm, mem.fits, mem.min_devices)


# ---------------------------------------------------------------------------------------------------- the report

BY = {"engine": lambda m: m.engine, "metric": lambda m: m.metric, "hardware": lambda m: m.hardware_id or m.hardware,
      "weights": lambda m: m.weights, "source": lambda m: m.source_group}


@dataclass(frozen=True)
class RowResult:
    line: int
    source: str
    engine: str
    hardware: str
    model: str
    weights: str
    metric: str
    batch: int
    measured: float
    ceiling: float
    estimate: float
    estimate_low: float
    estimate_high: float
    error_pct: float  # 100 x (estimate - measured) / measured
    ceiling_violation: bool  # measured beats the ceiling by more than 3%
    profile: str  # the engine profile the estimate used
    defaults_used: tuple[str, ...]

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class MetricSummary:
    n: int
    median_abs_error_pct: float
    p90_abs_error_pct: float
    bias_pct: float  # signed median: > 0 means the estimate is high (too fast for speeds, too slow for times)
    ceiling_violations: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ValidationReport:
    method: str
    summary: dict[str, MetricSummary]
    groups: dict[str, dict[str, MetricSummary]]
    rows: tuple[RowResult, ...]
    skipped: tuple[Skipped, ...]
    data: tuple[str, ...]

    @property
    def violations(self) -> list[RowResult]:
        return [r for r in self.rows if r.ceiling_violation]

    def to_dict(self) -> dict:
        return {
            "method": self.method, "data": list(self.data),
            "summary": {k: v.to_dict() for k, v in self.summary.items()},
            "groups": {g: {k: v.to_dict() for k, v in d.items()} for g, d in self.groups.items()},
            "rows": [r.to_dict() for r in self.rows],
            "ceiling_violations": [r.to_dict() for r in self.violations],
            "skipped": [asdict(s) for s in self.skipped],
        }


def error_stats(err_pct) -> dict:
    """n, median and p90 of the absolute error %, and the bias (signed median)."""
    err = np.asarray(err_pct, dtype=float)
    return {"n": int(err.size), "median_abs_error_pct": float(np.median(np.abs(err))),
            "p90_abs_error_pct": float(np.percentile(np.abs(err), 90)), "bias_pct": float(np.median(err))}


def summarize_errors(rowset, estimates) -> dict[str, dict]:
    """error_stats per metric of a calibrate.RowSet's estimates."""
    err = 100 * (estimates - rowset.measured) / rowset.measured
    return {metric: error_stats(err[rowset.metric == i]) for i, metric in enumerate(METRICS)
            if (rowset.metric == i).any()}


def summarize(results: list[RowResult]) -> MetricSummary:
    return MetricSummary(**error_stats([r.error_pct for r in results]),
                         ceiling_violations=sum(r.ceiling_violation for r in results))


def summarize_by_metric(results: list[RowResult]) -> dict[str, MetricSummary]:
    return {metric: summarize([r for r in results if r.metric == metric])
            for metric in METRICS if any(r.metric == metric for r in results)}


def validate(data: list[str | Path] | None = None, by: str | None = None, loso: bool = False,
             profiles_path: str | Path | None = None, progress=None) -> ValidationReport:
    """Predict every row of the measurement CSVs; summarise the error per metric (and per `by` group)."""
    from .calibrate import RowSet, leave_one_source_out, row_params
    from .engines import load_profiles, lookup, metric_kind, shipped_profiles, speed_range

    if by is not None and by not in BY:
        raise UserError(f"--by must be one of {', '.join(BY)}, got {by!r}")
    paths = [Path(p) for p in (data or [catalog.MEASUREMENTS_CSV])]
    rows: list[Measurement] = []
    skipped: list[Skipped] = []
    for i, path in enumerate(paths):
        got, miss = read_measurements(path)
        prefix = f"{path.name}:" if len(paths) > 1 else ""
        rows += [replace(m, line=m.line + i * 1_000_000) if i else m for m in got]
        skipped += [Skipped(s.line, prefix + s.reason) if prefix else s for s in miss]
    if not rows:
        raise UserError("no row could be predicted: " + "; ".join(f"line {s.line}: {s.reason}" for s in skipped[:3]))
    profiles, ranges, _ = load_profiles(profiles_path) if profiles_path else shipped_profiles()
    rowset = RowSet([row_model(m) for m in rows])
    estimates = leave_one_source_out(rowset, progress) if loso else rowset.values(row_params(rowset, profiles))
    ceilings = rowset.ceilings()
    results = []
    for m, est, ceil in zip(rows, estimates, ceilings):
        low, high = speed_range(m.engine, metric_kind(m.metric), ranges)
        is_time = m.metric in TIME_METRICS
        violation = m.value < ceil / (1 + CEILING_TOLERANCE) if is_time else m.value > ceil * (1 + CEILING_TOLERANCE)
        results.append(RowResult(
            m.line, m.source, m.engine, m.hardware, m.model, m.weights, m.metric, m.batch, m.value, float(ceil),
            float(est), float(est / high if is_time else est * low), float(est / low if is_time else est * high),
            float(100 * (est - m.value) / m.value), bool(violation), lookup(profiles, m.engine)[0], m.defaults_used))
    summary = summarize_by_metric(results)
    groups: dict[str, dict[str, MetricSummary]] = {}
    if by:
        labels = [str(BY[by](m)) for m in rows]
        groups = {g: summarize_by_metric([r for label, r in zip(labels, results) if label == g])
                  for g in sorted(set(labels))}
    method = ("leave-one-source-out: each row estimated by profiles fitted without its own source" if loso else
              "shipped engine profiles (fitted on the default data: in-sample for it)")
    return ValidationReport(method, summary, groups, tuple(results), tuple(skipped), tuple(str(p) for p in paths))


def plot_validation(report: ValidationReport, path: str | Path) -> Path:
    """Estimate against measured on log-log axes, the +-10% and +-25% bands, one colour per engine."""
    from .plots import check_plot_path, pyplot, save_figure

    path = check_plot_path(path)
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.5))
    engines = sorted({r.engine for r in report.rows})
    colours = {e: plt.get_cmap("tab20")(i % 20) for i, e in enumerate(engines)}
    for ax, kind, metrics in ((axes[0], "speeds (tok/s)", ("decode_tok_s", "decode_throughput_tok_s",
                                                             "prefill_tok_s", "throughput_tok_s")),
                              (axes[1], "times (ms)", TIME_METRICS)):
        rows = [r for r in report.rows if r.metric in metrics]
        if not rows:
            ax.set_visible(False)
            continue
        lo = min(min(r.measured, r.estimate) for r in rows) / 1.5
        hi = max(max(r.measured, r.estimate) for r in rows) * 1.5
        xs = np.geomspace(lo, hi, 50)
        ax.plot(xs, xs, color="black", lw=1)
        for band, shade in ((0.25, "0.93"), (0.10, "0.85")):
            ax.fill_between(xs, xs * (1 - band), xs * (1 + band), color=shade, lw=0, label=f"±{band:.0%}")
        for e in engines:
            sel = [r for r in rows if r.engine == e]
            if sel:
                ax.scatter([r.measured for r in sel], [r.estimate for r in sel], s=12, color=colours[e], label=e,
                           marker="o" if "decode" in sel[0].metric else "^")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"measured {kind}")
        ax.set_ylabel(f"estimated {kind}")
        ax.grid(True, which="both", color="0.95")
        ax.legend(fontsize=6, loc="upper left")
    fig.suptitle(f"llm-roofline estimate vs public measurements ({report.method.split(':')[0]})", fontsize=9)
    save_figure(fig, path)
    plt.close(fig)
    return path
