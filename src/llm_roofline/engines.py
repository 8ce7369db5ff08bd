"""Engine efficiency profiles: how much of a device's peaks an inference engine reaches, as data.

The shipped profiles (catalog/engine_profiles.json) are fitted by `llm-roofline calibrate` on public
measurements (see calibrate.py for the method); `predict --engine NAME` uses them for the estimate and its range.
This module stays free of numpy so that `predict` starts fast.
"""

from __future__ import annotations

import json
import math
from dataclasses import MISSING, asdict, dataclass
from functools import cache
from pathlib import Path

from . import catalog
from .errors import UserError, closest
from .formats import WeightFormat, load_format
from .hardware import Hardware

PROFILES_JSON = catalog.CATALOG_DIR / "engine_profiles.json"
PARAMS = ("bandwidth_efficiency", "compute_efficiency", "step_overhead_us", "allreduce_us", "int8_compute_efficiency",
          "prefill_overhead_us", "allreduce_pcie_us", "bw_factor_8bit", "bw_factor_4bit", "bw_factor_hbm",
          "unpack_cycles_per_weight", "launch_us_per_layer")
# NVIDIA NIM serves through TensorRT-LLM (NVIDIA's NIM documentation): same family.
FAMILIES = {"nim": "tensorrt", "tensorrt-llm": "tensorrt",
            # llama.cpp's Metal, Vulkan and ROCm backends are other kernels (shaders, matrix paths, launch costs)
            # than its CUDA ones, which most measurements of the llama.cpp family are: each is a family of its own,
            # so one without measurements of its own falls back to the all-engine default, not to CUDA's fit
            "llama.cpp-metal": "llama.cpp-metal", "llama.cpp-vulkan": "llama.cpp-vulkan",
            "llama.cpp-rocm": "llama.cpp-rocm"}


@dataclass(frozen=True)
class Profile:
    bandwidth_efficiency: float  # fraction of peak memory bandwidth reached by decode kernels
    compute_efficiency: float  # fraction of the float matmul peak reached in prefill
    step_overhead_us: float  # fixed time per decode step
    allreduce_us: float  # latency of one all-reduce over a scale-up link (NVLink, Infinity Fabric)
    int8_compute_efficiency: float  # fraction of the int8 peak (kernels that quantise activations to int8)
    prefill_overhead_us: float  # fixed time per prefill pass (admission, tokenisation, first graph)
    allreduce_pcie_us: float  # all-reduce latency over PCIe
    bw_factor_8bit: float  # bandwidth-efficiency multiplier for 8-bit weights (dequantisation cost)
    bw_factor_4bit: float  # ... for 6 bits or fewer
    # bandwidth-efficiency multiplier on HBM devices: HBM's bandwidth-delay product is several times GDDR's, so a
    # decode kernel that keeps too few bytes in flight reaches a smaller fraction of it (1: no difference)
    bw_factor_hbm: float = 1.0
    # SM cycles a decode kernel spends per block-quantised weight unpacking and scaling it, on top of reading it:
    # time grows with weights / (SMs x clock) as well as bytes / bandwidth (profiles written before it: 0)
    unpack_cycles_per_weight: float = 0.0
    # per layer, the cost of launching a decode step's kernels one by one from the host where the engine does not
    # replay a captured graph (replays_graph); 0 where it does, or for profiles written before it
    launch_us_per_layer: float = 0.0
    rows: int = 0  # measurements it was fitted on (0: inherited)

    def params(self) -> tuple[float, ...]:
        return tuple(getattr(self, name) for name in PARAMS)

    def to_dict(self) -> dict:
        return asdict(self)


def family(engine: str) -> str:
    return FAMILIES.get(engine, engine.split("-")[0]) if engine else "default"


def project(engine: str) -> str:
    """The engine's project (llama.cpp for all its backends, tensorrt for TensorRT-LLM and NIM)."""
    return "tensorrt" if family(engine) == "tensorrt" else (engine or "default").split("-")[0]


def is_llama_cpp(engine: str | None) -> bool:
    """llama.cpp on any backend (llama.cpp, llama.cpp-cuda, -metal, -vulkan, -rocm, -cpu)."""
    return (engine or "").split("-")[0] == "llama.cpp"


def format_class(fmt: str | WeightFormat) -> int:
    """Kernel families by dequantisation work: 0 16/32-bit floats, 1 8-bit (fp8, int8, q8_0), 2 six bits or fewer."""
    bits = load_format(fmt).bits
    return 0 if bits >= 16 else 1 if bits >= 8 else 2


def format_factor(p: Profile, fmt: str | WeightFormat) -> float:
    """The profile's bandwidth-efficiency multiplier for the format's dequantisation class (1 for floats)."""
    return (1.0, p.bw_factor_8bit, p.bw_factor_4bit)[format_class(fmt)]


def metric_kind(metric: str) -> str:
    return "decode" if metric in ("decode_tok_s", "decode_throughput_tok_s", "tpot_ms") else "prefill"


def lookup(profiles: dict[str, Profile], engine: str | None) -> tuple[str, Profile]:
    """The most specific profile known for an engine: itself, its family, or the default."""
    for key in (engine or "", family(engine or ""), "default"):
        if key in profiles:
            return key, profiles[key]
    raise UserError("engine profiles have no 'default' entry")


def load_profiles(path: str | Path) -> tuple[dict[str, Profile], dict, dict]:
    """An engine-profile file, checked field by field: every parameter a finite number >= 0 (efficiencies and
    factors also <= 2), ranges as [low, high] pairs of positive numbers."""
    path = Path(path)
    bad = f"{path}: not an engine-profile file written by `llm-roofline calibrate`"
    try:
        data = json.loads(path.read_text(), parse_constant=lambda c: float(c))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise UserError(f"{bad} ({str(exc).splitlines()[0] if str(exc) else exc!r})") from None
    if not isinstance(data, dict) or not isinstance(data.get("profiles"), dict) or "default" not in data["profiles"]:
        raise UserError(f"{bad} (it needs an object 'profiles' with a 'default' entry)")
    fields = Profile.__dataclass_fields__
    required = [n for n, f in fields.items() if f.default is MISSING]
    profiles = {}
    for name, rec in data["profiles"].items():
        if not isinstance(rec, dict):
            raise UserError(f"{bad} (profile {name!r} is not an object)")
        unknown = sorted(set(rec) - set(fields))
        missing = [k for k in required if k not in rec]
        if unknown or missing:
            raise UserError(f"{bad} (profile {name!r}: " + (f"unknown field(s) {', '.join(unknown)}" if unknown else
                                                            f"missing field(s) {', '.join(missing)}") + ")")
        for key, value in rec.items():
            top = 2.0 if key in _FRACTIONS else 1e7
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or \
                    not 0 <= value <= top:
                raise UserError(f"{bad} (profile {name!r}: {key} must be a number from 0 to {top:g}, got {value!r})")
        profiles[name] = Profile(**rec)
    ranges = data.get("ranges", {})
    if not isinstance(ranges, dict) or not all(isinstance(d, dict) and all(map(_is_range, d.values()))
                                               for d in ranges.values()):
        raise UserError(f"{bad} ('ranges' must map families to {{kind: [low, high]}} with 0 < low <= high)")
    meta = data.get("meta", {})
    return profiles, ranges, meta if isinstance(meta, dict) else {}


def _is_range(value) -> bool:
    """[low, high] with 0 < low <= high, both finite numbers."""
    if not isinstance(value, list) or len(value) != 2:
        return False
    if any(isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) for x in value):
        return False
    return 0 < value[0] <= value[1]


_FRACTIONS = ("bandwidth_efficiency", "compute_efficiency", "int8_compute_efficiency", "bw_factor_8bit",
              "bw_factor_4bit", "bw_factor_hbm")


@cache
def shipped_profiles() -> tuple[dict[str, Profile], dict, dict]:
    return load_profiles(PROFILES_JSON)


def engine_names() -> list[str]:
    return sorted(shipped_profiles()[0])


# llama.cpp's CUDA backend replays each decode step as one CUDA graph from PR #6766 (merged 2024-05-08) on GPUs of
# compute capability 8.0 and newer, and on Volta and Turing (7.x) from PR #25749 (merged 2026-07); older GPUs,
# older builds and its other backends (Metal, Vulkan, and ROCm, whose HIP graphs are off by default) launch every
# kernel from the host. A build dated by month only counts from the first month after the merge.
LLAMA_CPP_CUDA_GRAPHS = ((8.0, "2024-06"), (7.0, "2026-08"))


def replays_graph(engine: str | None, hw: Hardware, build_date: str = "") -> bool:
    """Whether a decode step is launched as one captured graph (a fixed cost per step) rather than kernel by
    kernel (a cost per layer: Profile.launch_us_per_layer). Modelled for llama.cpp, whose builds and backends
    differ; every other engine's per-step cost is one fitted number (step_overhead_us). No build_date: a current
    build."""
    if not is_llama_cpp(engine):
        return True
    if engine != "llama.cpp-cuda":
        return False
    # a device the catalog gives no compute capability (not an NVIDIA record it knows): taken as a recent GPU
    cc = hw.compute_capability if hw.compute_capability is not None else LLAMA_CPP_CUDA_GRAPHS[0][0]
    return any(cc >= min_cc and (not build_date or build_date >= since) for min_cc, since in LLAMA_CPP_CUDA_GRAPHS)


def efficiency_for(engine: str, fmt: WeightFormat, hw: Hardware, profiles: dict[str, Profile] | None = None,
                   n_layers: int = 0, build_date: str = ""):
    """The estimate's inputs for `engine` running `fmt` on `hw` (a model of n_layers), from its profile."""
    from .roofline import Efficiency

    profiles = profiles if profiles is not None else shipped_profiles()[0]
    known = {k for k in profiles} | {family(k) for k in profiles}
    if engine not in known and family(engine) not in known:
        raise UserError(f"no efficiency profile for engine {engine!r}{closest(engine, known)}; "
                        f"known: {', '.join(sorted(known))}")
    key, p = lookup(profiles, engine)
    factor = format_factor(p, fmt) * (p.bw_factor_hbm if hw.hbm else 1.0)
    launch_us = 0.0 if replays_graph(engine, hw, build_date) else p.launch_us_per_layer * n_layers
    return Efficiency(
        bandwidth=min(1.0, p.bandwidth_efficiency * factor),
        compute=p.compute_efficiency,
        step_overhead_us=p.step_overhead_us + launch_us,
        allreduce_latency_us=p.allreduce_us if hw.link_gbps_bidir else p.allreduce_pcie_us,
        source=f"engine profile {key!r} (fitted on {p.rows} public measurements; catalog/engine_profiles.json)"
               + (f"; bandwidth x{p.bw_factor_hbm:.2f} on HBM" if hw.hbm and p.bw_factor_hbm != 1 else "")
               + (f"; step overhead {p.step_overhead_us:,.0f} µs + kernels launched one by one (no CUDA graph): "
                  f"{p.launch_us_per_layer:,.0f} µs x {n_layers} layers" if launch_us else ""),
        int8_compute=p.int8_compute_efficiency,
        prefill_overhead_us=p.prefill_overhead_us,
        unpack_cycles_per_weight=p.unpack_cycles_per_weight,
    )


def speed_range(engine: str | None, kind: str, ranges: dict | None = None) -> tuple[float, float]:
    """(low, high) multipliers of an estimated speed: 80% range (calibrate.RANGE_PERCENTILES) of measured/estimate in the
    leave-one-source-out residuals of the engine's family (or of all engines), widened to hold 1 so that a range
    always contains its estimate."""
    ranges = ranges if ranges is not None else shipped_profiles()[1]
    for key in (family(engine or ""), "default"):
        if kind in ranges.get(key, {}):
            low, high = ranges[key][kind]
            return min(float(low), 1.0), max(float(high), 1.0)
    return 1.0, 1.0


def runs_llama_cpp_cpu(hw: Hardware, fmt: WeightFormat, engine: str | None) -> bool:
    """A measured CPU profile running a GGUF format or llama.cpp: llama.cpp's CPU kernels, not PyTorch's."""
    return bool(hw.measured) and hw.device_class == "cpu" and (fmt.ggml or is_llama_cpp(engine))


def llama_cpp_view(hw: Hardware) -> Hardware:
    """A measured CPU as llama.cpp's kernels use it. They multiply F16 and BF16 weights in fp32 (converting with
    F16C) and quantised blocks with integer dot products on the same vector units, so PyTorch's own fp16 kernels (a
    fraction of its sgemm on CPUs) and its matmul curves and eager overheads say nothing about them. llama.cpp's
    prompt processing reached about the profile's fp32 sgemm rate for F16 and quantised files alike on the CPUs
    measured (docs/measure.md), so every path is taken at that rate; no published figure bounds it (llama.cpp can
    beat PyTorch's sgemm), so the ceiling leaves compute unbounded and bounds the memory stream only. llama.cpp's
    own kernel rates and per-token costs are measured by `bench FILE.gguf --engine llama.cpp`."""
    from dataclasses import replace

    fp32 = hw.peak_tflops.get("fp32")
    if not fp32:
        raise UserError(f"{hw.id} has no measured fp32 rate; measure the machine again (llm-roofline measure)")
    peaks = {**hw.peak_tflops, "fp16": fp32, "bf16": fp32, "int8": fp32}
    # PyTorch's measured eager overheads are dropped too: the CPU class's per-step default stands in for llama.cpp's
    return replace(hw, peak_tflops=peaks, matmul_curves={}, overheads={}, estimated_peaks=tuple(sorted(peaks)),
                   measured={"bandwidth_efficiency": 1.0, "compute_efficiency": 1.0})
