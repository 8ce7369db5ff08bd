"""Devices: memory bandwidth, capacity, per-dtype peak rates, device link, and where each figure came from."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from functools import cache
from pathlib import Path

from . import catalog
from .errors import UserError, closest

# The order in which a matmul falls back when a device has no unit for the dtype the format wants:
# e.g. FP8 weights on an A100 are multiplied at the FP16 rate.
PEAK_FALLBACK = {
    "fp4": ("fp4", "fp8", "fp16", "fp32"),
    "fp8": ("fp8", "fp16", "fp32"),
    "int8": ("int8", "fp16", "fp32"),
    "fp16": ("fp16", "fp32"),
    "bf16": ("bf16", "fp16", "fp32"),  # the catalog's "fp16" is the 16-bit rate (bf16 too); profiles measure both
    "fp32": ("fp32", "fp16"),  # TPUs and Gaudi publish no FP32 peak; they run FP32 matmuls on the bf16 units
}


@dataclass(frozen=True)
class EfficiencyDefaults:
    """Achievable fractions of the datasheet peaks and fixed costs, per device class (the estimate's inputs)."""

    bandwidth_efficiency: float
    compute_efficiency: float
    step_overhead_us: float
    runtime_overhead_gb: float  # CUDA/Metal context, library workspaces, allocator slack, per device
    allreduce_latency_us: float
    source: str
    layer_overhead_us: float = 0.0  # per layer per step (measured profiles: eager dispatch per layer)


_NOTES = "typical attainable fractions of datasheet peaks, not fitted; docs/method.md, class defaults"
CLASS_DEFAULTS: dict[str, EfficiencyDefaults] = {
    # HBM parts reach about 80-90% of peak bandwidth and 60-80% of dense-GEMM peak.
    "datacenter": EfficiencyDefaults(0.80, 0.70, 200.0, 1.0, 10.0, _NOTES),
    # GDDR consumer and workstation cards: the same bandwidth fraction, less of the tensor peak.
    "consumer": EfficiencyDefaults(0.80, 0.60, 200.0, 1.0, 25.0, _NOTES),
    # Apple GPUs reach about 75-85% of the advertised unified-memory bandwidth.
    "apple": EfficiencyDefaults(0.75, 0.50, 300.0, 0.5, 25.0, _NOTES),
    # STREAM-class tests (McCalpin's STREAM) reach about 70-85% of theoretical DRAM bandwidth; AMX/AVX peaks are
    # rarely met.
    "cpu": EfficiencyDefaults(0.70, 0.50, 500.0, 0.5, 25.0, _NOTES),
    # Unified-memory SoCs and APUs (Jetson, DGX Spark, Strix Halo): LPDDR, like Apple parts.
    "soc": EfficiencyDefaults(0.75, 0.50, 300.0, 0.5, 25.0, _NOTES),
}
CATEGORY_CLASS = {
    "datacenter_gpu": "datacenter",
    "superchip": "datacenter",
    "datacenter_accelerator": "datacenter",
    "tpu": "datacenter",
    "consumer_gpu": "consumer",
    "workstation_gpu": "consumer",
    "apple_soc": "apple",
    "server_cpu": "cpu",
    "desktop_cpu": "cpu",
    "edge_soc": "soc",
    "desktop_soc": "soc",
    "apu": "soc",
}
# A device with no published scale-up link talks over PCIe; with neither, assume PCIe 3.0 x16.
DEFAULT_LINK_GBPS_BIDIR = 32.0


@dataclass(frozen=True)
class Hardware:
    id: str
    name: str
    category: str
    memory_gb: float
    bandwidth_gbps: float  # peak DRAM/HBM bandwidth, 1e9 B/s
    peak_tflops: dict[str, float | None]  # dense peaks by dtype: fp32, tf32, fp16 (= bf16), fp8, int8, fp4
    vendor: str = ""
    link_gbps_bidir: float | None = None  # device-to-device (NVLink, Infinity Fabric, ICI), both directions
    link_name: str | None = None
    pcie_gbps_bidir: float | None = None
    aliases: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    notes: str = ""
    confidence: str | None = None
    memory_type: str | None = None  # HBM2, HBM3, GDDR6X, LPDDR5 ...: HBM's larger bandwidth-delay product matters
    sm_count: int | None = None  # streaming multiprocessors (NVIDIA), where the record gives them
    boost_clock_mhz: float | None = None
    compute_capability: float | None = None  # NVIDIA CUDA compute capability (8.0 Ampere, 9.0 Hopper, ...)
    # Set by a measured profile (llm-roofline measure): figures that replace the class defaults,
    measured: dict[str, float] = field(default_factory=dict)
    # the read rate against buffer size ((bytes, GB/s), ascending), and per matmul dtype, matrix out/in aspect and
    # matrix size the rate at which weights stream when M vectors multiply them
    # ({aspect: {matrix bytes: ((M, GB/s), ...)}}).
    bandwidth_curve: tuple[tuple[float, float], ...] = ()
    matmul_curves: dict[str, dict[float, dict[float, tuple[tuple[float, float], ...]]]] = field(default_factory=dict)
    # measured per weight dtype (f32, bf16) at batch 1 and 8: {dtype: {batch: {step_overhead_us, layer_...}}}
    overheads: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    # peaks that bound nothing: a device known only by name and bandwidth (guessed peaks), or a measured profile
    # (a matmul rate one kernel reached at one shape; other kernels and shapes run faster, so it is no bound). The
    # estimate uses them, the ceiling does not (its compute side is then not bounded)
    estimated_peaks: tuple[str, ...] = ()

    def overheads_at(self, batch: int, weights: str = "f32") -> tuple[float, float]:
        """(per-step, per-layer) overhead in µs for a weight format at a batch size, interpolated between the
        measured batches (the closest measured dtype: bf16 for 16-bit formats, f32 otherwise)."""
        d = self.defaults
        if not self.overheads:
            return d.step_overhead_us, d.layer_overhead_us
        key = "bf16" if weights in ("bf16", "f16") else "f32"
        key = key if key in self.overheads else next(iter(self.overheads))
        points = sorted((int(b), v) for b, v in self.overheads[key].items())
        step = _interpolate(tuple((b, max(v["step_overhead_us"], 1e-3)) for b, v in points), batch)
        layer = _interpolate(tuple((b, max(v["layer_overhead_us"], 1e-3)) for b, v in points), batch)
        return step, layer

    def bandwidth_at(self, working_set_bytes: float) -> float:
        """Measured read rate for a working set of this size (log-log interpolation; the large-buffer rate
        beyond the largest buffer measured); the datasheet figure without a curve."""
        return _interpolate(self.bandwidth_curve, working_set_bytes) or self.bandwidth_gbps

    def weight_stream_gbps(self, dtype: str, tokens: float, matrix_bytes: float, aspect: float = 1.0) -> float | None:
        """Measured rate at which matmul weights stream when `tokens` vectors multiply (out, in) matrices of this
        size and out/in aspect (log-log interpolation in all three; clamped to what was measured)."""
        shapes = self.matmul_curves.get(dtype) or self.matmul_curves.get({"fp16": "bf16", "bf16": "fp16"}.get(
            dtype, ""))
        if not shapes:
            return None
        # Beyond what was measured, take fewer rows of the same length: a GEMV's cost per row depends on the
        # row (input) length, and more rows are more of the same work. (An lm_head of 150k x 896 streams like
        # a 3.6k x 896 matrix, not like the largest square one.)
        tallest = max(shapes)
        largest = max(max(curves) for curves in shapes.values())
        if aspect > tallest:
            matrix_bytes, aspect = matrix_bytes * tallest / aspect, tallest
        if matrix_bytes > largest:
            matrix_bytes, aspect = largest, aspect * largest / matrix_bytes
        by_aspect = []
        for shape, curves in sorted(shapes.items()):
            by_size = tuple(sorted((size, _interpolate(curve, tokens)) for size, curve in curves.items()))
            by_aspect.append((shape, _interpolate(by_size, matrix_bytes)))
        return _interpolate(tuple(by_aspect), aspect)

    @property
    def device_class(self) -> str:
        return CATEGORY_CLASS.get(self.category, "datacenter")

    @property
    def defaults(self) -> EfficiencyDefaults:
        base = CLASS_DEFAULTS[self.device_class]
        if self.measured:
            keep = {k: v for k, v in self.measured.items() if k in EfficiencyDefaults.__dataclass_fields__}
            base = replace(base, source="measured profile", **keep)
        return base

    @property
    def is_gpu_like(self) -> bool:
        return self.device_class in ("datacenter", "consumer")

    @property
    def half_accumulate_factor(self) -> float:
        """GeForce cards run FP16/FP8 tensor math twice as fast when accumulating in FP16; the catalog records
        the FP32-accumulate rate (noted in each GeForce record). A ceiling must not be beaten, so it takes
        the faster rate; the estimate's compute efficiency then says how much of it an engine gets."""
        return 2.0 if self.vendor == "NVIDIA" and self.category == "consumer_gpu" else 1.0

    def peak(self, dtype: str) -> tuple[float | None, str]:
        """(TFLOPS, dtype actually used): the first available rate in the dtype's fallback chain. Integer-quantised
        weights run on the fp16 units where those are faster than the int8 ones (V100 and TITAN V have fp16
        tensor cores but int8 only as dp4a on the CUDA cores: llama.cpp then dequantises and multiplies in fp16,
        ggml-org/llama.cpp#8075)."""
        rates = [(self._rate(c), c) for c in PEAK_FALLBACK[dtype]]
        rates = [(r, c) for r, c in rates if r]
        if not rates:
            return None, dtype
        if dtype == "int8" and rates[0][1] == "int8" and len(rates) > 1 and rates[1][0] > rates[0][0]:
            return rates[1]
        return rates[0]

    def _rate(self, dtype: str) -> float | None:
        rate = self.peak_tflops.get(dtype)
        if not rate:
            return None
        return float(rate) * (self.half_accumulate_factor if dtype in ("fp16", "bf16", "fp8") else 1.0)

    @property
    def link_gbps(self) -> float:
        """One direction of the device-to-device link that tensor-parallel all-reduces use."""
        bidir = self.link_gbps_bidir or self.pcie_gbps_bidir or DEFAULT_LINK_GBPS_BIDIR
        return bidir / 2

    @property
    def hbm(self) -> bool:
        return bool(self.memory_type) and self.memory_type.upper().startswith("HBM")

    @property
    def sm_cycles_per_s(self) -> float | None:
        """Streaming-multiprocessor (compute-unit) cycles per second: SMs x boost clock where the record gives them,
        else the fp32 vector rate / 256, which is the same product on NVIDIA parts from Ampere on, Apple GPUs
        (128 fp32 lanes per core) and RDNA3 (64 lanes per CU, dual-issue)."""
        if self._sm_clock:
            return self._sm_clock
        fp32 = self.peak_tflops.get("fp32")
        return fp32 * 1e12 / 256 if fp32 else None

    @property
    def _sm_clock(self) -> float | None:
        """SMs x boost clock (cycles per second), only where the record gives both."""
        return self.sm_count * self.boost_clock_mhz * 1e6 if self.sm_count and self.boost_clock_mhz else None

    @property
    def tensor_cores(self) -> bool:
        """Matrix units: a 16-bit or int8 peak at least 6x the fp32 vector rate (NVIDIA from Volta on: 8x or more;
        Pascal, GTX 16xx, Apple GPUs and RDNA parts stay at 1-4x)."""
        fp32 = self.peak_tflops.get("fp32")
        matrix = max(self.peak_tflops.get("fp16") or 0, self.peak_tflops.get("int8") or 0)
        return bool(fp32) and matrix >= 6 * fp32

    @property
    def quantized_matmul_tops(self) -> float | None:
        """The int8 rate that kernels quantising activations on the fly (llama.cpp's MMQ) are scaled by: the int8
        peak, capped at 2048 int8 ops per SM per clock where the record gives SMs and clock. Such kernels spend
        most of their time on per-SM work besides the tensor-core multiply (unpacking blocks, scales, shared
        memory), which does not widen with the data-centre parts' wider tensor cores (A100: 4096 ops per SM per
        clock, H100: about 7500); on GeForce and workstation parts from Turing to Blackwell, 2048 is the int8
        peak itself."""
        peak = self.peak_tflops.get("int8")
        if peak and self._sm_clock:
            return min(peak, 2048 * self._sm_clock / 1e12)
        return peak

    def ridge_point(self, dtype: str = "fp16") -> float | None:
        """FLOPs per byte above which a kernel is compute-bound: peak FLOPS / bandwidth."""
        rate, _ = self.peak(dtype)
        return rate * 1e12 / (self.bandwidth_gbps * 1e9) if rate else None

    def to_dict(self) -> dict:
        out = asdict(self)
        out["device_class"] = self.device_class
        out["link_gbps"] = self.link_gbps
        out["ridge_point_flop_per_byte"] = self.ridge_point()
        return out

    @classmethod
    def from_record(cls, rec: dict) -> Hardware:
        return cls(
            id=rec["id"],
            name=rec.get("name", rec["id"]),
            category=rec.get("category", "datacenter_gpu"),
            memory_gb=float(rec["memory_gb"]),
            bandwidth_gbps=float(rec["bandwidth_gbps"]),
            peak_tflops=dict(rec.get("peak_tflops") or {}),
            vendor=rec.get("vendor", ""),
            link_gbps_bidir=rec.get("link_gbps_bidir"),
            link_name=rec.get("link_name"),
            pcie_gbps_bidir=rec.get("pcie_gbps_bidir"),
            aliases=tuple(rec.get("aliases") or ()),
            sources=tuple(rec.get("sources") or ()),
            notes=rec.get("notes", ""),
            confidence=rec.get("confidence"),
            memory_type=rec.get("memory_type"),
            sm_count=rec.get("sm_count"),
            boost_clock_mhz=rec.get("boost_clock_mhz"),
            compute_capability=rec.get("compute_capability"),
            measured=dict(rec.get("measured") or {}),
            bandwidth_curve=_bandwidth_curve(rec),
            matmul_curves=_matmul_curves(rec.get("roofline") or ()),
            overheads=dict(rec.get("overheads") or {}),
            estimated_peaks=tuple(sorted(rec.get("peak_tflops") or {})) if rec.get("measured") else (),
        )


MEMORY_RESIDENT = 4  # a buffer this many times the last-level cache streams from memory, not from the cache


def _bandwidth_curve(rec: dict) -> tuple[tuple[float, float], ...]:
    """The read rate against buffer size, ascending, with every buffer at least MEMORY_RESIDENT times the
    last-level cache taken at one rate, the fastest of them, and no smaller buffer slower than that. They all
    stream from the same memory, so what differs between them is the machine's noise (a shared VM's memory rate
    flips between ~31 and ~48 GB/s from one second to the next), and a working set that fits better in the cache
    is never slower. Left as measured, a fast reading at 256 MiB and a slow one at 1 GiB would tell the estimate
    that a 216 MB working set sits in a faster level than the 256 MiB stacks its matmul rates were measured on.
    The fastest, because the ceiling reads this curve and must not be beaten."""
    rows = sorted((float(r["bytes"]), float(r["read_gbps"])) for r in rec.get("bandwidth") or ())
    machine = rec.get("machine") if isinstance(rec.get("machine"), dict) else {}
    cache = rec.get("cache_bytes") or machine.get("last_level_cache_bytes")
    if not rows or not isinstance(cache, (int, float)) or cache <= 0:
        return tuple(rows)
    memory = max(g for b, g in rows if b >= MEMORY_RESIDENT * cache or b == rows[-1][0])
    return tuple((b, memory if b >= MEMORY_RESIDENT * cache else max(g, memory)) for b, g in rows)


@cache
def _interpolate(curve, x: float) -> float | None:
    if not curve:
        return None
    import math

    if x <= curve[0][0]:
        return curve[0][1]
    for (x0, y0), (x1, y1) in zip(curve, curve[1:]):
        if x <= x1:
            f = (math.log(x) - math.log(x0)) / (math.log(x1) - math.log(x0))
            return math.exp(math.log(y0) + f * (math.log(y1) - math.log(y0)))
    return curve[-1][1]


def _matmul_curves(rows) -> dict[str, dict[float, dict[float, tuple[tuple[float, float], ...]]]]:
    curves: dict[str, dict[float, dict[float, list]]] = {}
    for r in rows:
        size = r.get("matrix_bytes", r.get("weight_bytes", 0))
        by_size = curves.setdefault(r.get("dtype", "fp32"), {}).setdefault(r.get("aspect", 1.0), {})
        by_size.setdefault(size, []).append((r["vectors"], r["gbps"]))
    return {k: {a: {size: tuple(sorted(v)) for size, v in d.items()} for a, d in by_aspect.items()}
            for k, by_aspect in curves.items()}


def _catalog_names() -> dict[str, dict]:
    names: dict[str, dict] = {}
    for rec in catalog.hardware_records():
        for name in (rec["id"], *rec["aliases"]):
            names[name] = rec
    return names


def hardware_ids() -> list[str]:
    return [rec["id"] for rec in catalog.hardware_records()]


def load_hardware(name: str | Path | Hardware) -> Hardware:
    """A catalog id, a short alias (h100, 4090, m2-ultra ...) or a path to a device/profile JSON file."""
    if isinstance(name, Hardware):
        return name
    text = str(name)
    path = Path(text).expanduser()
    if text.endswith(".json") or path.is_file():
        return _load_file(path)
    names = _catalog_names()
    key = catalog.normalize_name(text)
    for candidate in (key, key.removeprefix("nvidia-").removeprefix("amd-").removeprefix("apple-")):
        if candidate in names:
            return Hardware.from_record(names[candidate])
        for prefix in ("nvidia-", "amd-", "apple-", "intel-", "google-"):
            if prefix + candidate in names:
                return Hardware.from_record(names[prefix + candidate])
    raise UserError(
        f"unknown hardware {text!r}{closest(key, names)}; `llm-roofline hardware list` shows them all"
    )


def _load_file(path: Path) -> Hardware:
    if not path.is_file():
        raise UserError(f"hardware file {str(path)!r} does not exist")
    if path.stat().st_size > 64 << 20:
        raise UserError(f"hardware file {str(path)!r} is over 64 MiB; a device profile is a few hundred kB")
    try:
        rec = json.loads(path.read_text())  # NaN / Infinity parse, then the schema names the field they are in
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise UserError(f"hardware file {str(path)!r} is not valid JSON: {exc}") from None
    if not isinstance(rec, dict):
        raise UserError(f"hardware file {str(path)!r} must hold a JSON object")
    rec = dict(rec)
    rec.setdefault("id", path.stem)
    from .hardware_schema import check_device_record

    return Hardware.from_record(check_device_record(rec, f"hardware file {str(path)!r}"))


def select_hardware(names: list[str], category: list[str] | None = None,
                    min_memory_gb: float | None = None) -> list[Hardware]:
    """Devices by name, `all` for the catalog, filtered by category (a catalog category such as consumer_gpu, or a
    class: datacenter, consumer, apple, cpu, soc) and by memory per device; duplicates (aliases) once."""
    categories = sorted({rec["category"] for rec in catalog.hardware_records()})
    for c in category or ():
        if c not in categories and c not in CLASS_DEFAULTS:
            raise UserError(f"unknown device category {c!r}{closest(c, [*categories, *CLASS_DEFAULTS])}; "
                            f"one of {', '.join([*categories, *CLASS_DEFAULTS])}")
    if min_memory_gb is not None and not (isinstance(min_memory_gb, (int, float)) and 0 <= min_memory_gb < 1e6):
        raise UserError(f"--min-memory-gb must be a number of GB >= 0, got {min_memory_gb!r}")
    out: dict[str, Hardware] = {}
    for name in names:
        for hw in ([Hardware.from_record(r) for r in catalog.hardware_records()] if name == "all"
                   else [load_hardware(name)]):
            out.setdefault(hw.id, hw)
    chosen = [hw for hw in out.values()
              if (not category or hw.category in category or hw.device_class in category)
              and (min_memory_gb is None or hw.memory_gb >= min_memory_gb)]
    if not chosen:
        raise UserError("no device matches: " + ", ".join(
            x for x in (f"--category {','.join(category)}" if category else "",
                        f"--min-memory-gb {min_memory_gb:g}" if min_memory_gb is not None else "") if x)
                        + "; widen the filter")
    return chosen
