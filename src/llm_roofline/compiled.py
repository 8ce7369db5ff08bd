"""compile(): the architecture work done once for a model on a device in a format, KV format, parallel layout and
engine. Its predict() (one workload, every figure and the operator table) and times() (arrays of workloads, what
sweep, plan and validate use) evaluate the same closed forms: step.py's costs timed by timing.py.
"""

from __future__ import annotations

import math
import os
import stat
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .architecture import ModelSpec, load_model, param_counts
from .errors import UserError, require_positive
from .formats import WeightFormat, kv_bits, load_format
from .hardware import Hardware, load_hardware
from .memory import GB, Footprint, memory_budget
from .results import (DecodeResult, HardwareInfo, ModelInfo, OperatorRow, Prediction, PrefillResult, Workload)
from .scalar import ScalarPhase, ScalarStep
from .scalar import applies as scalar_applies
from .frozen import make
from .step import LINK_KINDS, CompiledStep
from .timing import (DeviceStep, Efficiency, PhaseTimes, decode_times, pipelined_decode_ceiling, prefill_times)

MAX_TOKENS = 1 << 30  # batch, prompt, context, gen: far beyond any device's memory, small enough to stay exact
MAX_PARALLEL = 4096


def resolve_efficiency(hw: Hardware, bandwidth_efficiency: float | None, compute_efficiency: float | None,
                       step_overhead_us: float | None, engine: str | None = None,
                       fmt: WeightFormat | None = None, n_layers: int = 0, batch: int = 1) -> Efficiency:
    """The estimate's inputs: an engine's fitted profile, else the device-class defaults; explicit values win."""
    for name, value in (("bandwidth_efficiency", bandwidth_efficiency), ("compute_efficiency", compute_efficiency)):
        if value is not None and not 0 < value <= 1:
            raise UserError(f"{name} must be in (0, 1], got {value!r}")
    if step_overhead_us is not None and not (math.isfinite(step_overhead_us) and 0 <= step_overhead_us <= 1e9):
        raise UserError(f"step_overhead_us must be a finite number >= 0 (µs), got {step_overhead_us!r}")
    overridden = any(v is not None for v in (bandwidth_efficiency, compute_efficiency, step_overhead_us))
    if engine:
        from .engines import efficiency_for

        base = efficiency_for(engine, fmt, hw, n_layers=n_layers)
    else:
        d = hw.defaults
        step_us, layer_us = hw.overheads_at(batch, fmt.id if fmt is not None else "f32")
        base = Efficiency(d.bandwidth_efficiency, d.compute_efficiency, step_us + layer_us * n_layers,
                          d.allreduce_latency_us,
                          f"{hw.device_class} class defaults ({d.source})" if not hw.measured else
                          f"measured profile {hw.id}: overhead {step_us:,.0f} µs/step + {layer_us:,.0f} µs/layer "
                          f"x {n_layers} layers at batch {batch}")
        if fmt is not None and not hw.measured:
            base = _dequantisation(base, fmt, hw)
    changes = {k: v for k, v in (("bandwidth", bandwidth_efficiency), ("compute", compute_efficiency),
                                 ("step_overhead_us", step_overhead_us)) if v is not None}
    if compute_efficiency is not None:
        changes["int8_compute"] = None  # one compute efficiency for every dtype, as asked
    if step_overhead_us is not None:
        changes["prefill_overhead_us"] = None
    if overridden:
        changes["source"] = base.source + "; overridden by the caller"
    return replace(base, **changes)


def _dequantisation(base: Efficiency, fmt: WeightFormat, hw: Hardware) -> Efficiency:
    """Without an engine, quantised weights still pay what every engine's decode kernels pay to unpack them: the
    all-engine fit's bandwidth factor for the format's bit class and its SM cycles per block-quantised weight
    (calibrate.py; fitted on contrasts between formats within each engine, every engine weighing the same). The
    class defaults are datasheet fractions that know nothing of dequantisation."""
    from .engines import format_class, format_factor, shipped_profiles

    if format_class(fmt) == 0:
        return base
    default = shipped_profiles()[0]["default"]
    factor = format_factor(default, fmt)
    unpack = default.unpack_cycles_per_weight if hw.sm_cycles_per_s else 0.0
    if factor == 1 and not unpack:
        return base
    return replace(base, bandwidth=min(1.0, base.bandwidth * factor), unpack_cycles_per_weight=unpack,
                   source=base.source + "; dequantisation as fitted across engines (the 'default' engine profile"
                   + (f": bandwidth x{factor:.3g}" if factor != 1 else "") + ")")


def check_tp(spec: ModelSpec, tp: int) -> None:
    """Tensor parallelism splits attention heads (and linear-attention value heads) evenly over the devices, as
    vLLM, SGLang and TensorRT-LLM require; KV heads split evenly or are replicated when there are fewer of them."""
    if tp == 1:
        return
    for layer, _ in spec.layer_kinds:
        heads = (spec.mamba.n_heads if spec.mamba is not None else spec.linear_attention.n_value_heads) \
            if layer.attention == "linear" else layer.n_heads
        kv = heads if layer.attention in ("linear", "mla") else layer.n_kv_heads
        if heads % tp or (kv % tp and tp % kv):
            valid = [n for n in range(1, heads + 1) if not heads % n and (not kv % n or not n % kv)]
            raise UserError(f"--tp {tp} does not split {spec.id}'s {heads} attention heads ({kv} KV heads) evenly;"
                            f" valid: {', '.join(map(str, valid[:12]))}{', ...' if len(valid) > 12 else ''}")


def check_pp(spec: ModelSpec, pp: int) -> None:
    """A layer split needs at least one layer per stage."""
    if pp > spec.n_layers:
        raise UserError(f"--pp {pp} is more stages than {spec.id}'s {spec.n_layers} layers; at most {spec.n_layers}")


def check_ep(spec: ModelSpec, tp: int, ep: int) -> None:
    """Expert parallel spreads whole experts over ep devices (a divisor of the experts), each of the ep / tp
    data-parallel replicas of the dense part being tp devices."""
    if ep == 1:
        return
    if spec.moe is None:
        raise UserError(f"--ep spreads a mixture of experts' experts over devices; {spec.id} is dense: use --tp")
    if ep % tp:
        raise UserError(f"--ep {ep} is not a multiple of --tp {tp}: the dense part runs tp-way in ep / tp replicas; "
                        f"e.g. --ep {tp * max(1, ep // tp)}")
    n = spec.moe.n_experts
    if n % ep:
        valid = [d for d in range(tp, n + 1, tp) if not n % d and d > 1]
        raise UserError(f"--ep {ep} does not split {spec.id}'s {n} experts evenly; valid: "
                        f"{', '.join(map(str, valid[:12]))}{', ...' if len(valid) > 12 else ''}")


def check_workload(**values: int | None) -> None:
    """Whole numbers within bounds: batch, prompt, gen >= 1, context >= 0 (None: the default)."""
    for name, value in values.items():
        if value is None:
            continue
        require_positive(name, value, allow_zero=name == "context")
        if value > MAX_TOKENS:
            raise UserError(f"{name} {value:,} is beyond what any device holds (at most {MAX_TOKENS:,})")


@dataclass(frozen=True)
class Times:
    """Decode (the mean step of the run) and prefill of arrays of workloads, and the bandwidth used."""

    decode: PhaseTimes
    prefill: PhaseTimes
    decode_ceiling_s: np.ndarray  # with a pipeline: the best micro-batching (timing.pipelined_decode_ceiling)
    bandwidth_gbps: np.ndarray


class Compiled:
    """A model on a device in a format and layout, ready to evaluate: compile() builds it."""

    def __init__(self, spec: ModelSpec, hw: Hardware, fmt: WeightFormat, kv_name: str, tp: int, pp: int,
                 engine: str | None, overrides: dict, routing_skew: float = 0.0, ep: int = 1,
                 notes: tuple[str, ...] = ()):
        self.spec, self.hw, self.fmt, self.kv_name, self.tp, self.pp, self.engine = spec, hw, fmt, kv_name, tp, pp, \
            engine
        self.ep = ep
        self.notes = notes  # what compile() changed about the device or engine, said in predict
        self.overrides = overrides
        self.kv_bits = kv_bits(kv_name)
        self.routing_skew = routing_skew
        shared = _device_free(spec, fmt, self.kv_bits, tp, pp, routing_skew, ep)
        self.step, self.counts, self.weight_bytes_total = shared.step, shared.counts, shared.weight_bytes_total
        self.device = DeviceStep(self.step, hw)
        self.efficiency = self.efficiency_at(1)
        # a measured profile's overheads depend on the batch, unless an engine or the caller sets them
        self.per_batch_overhead = bool(hw.overheads) and not engine and overrides["step_overhead_us"] is None
        self.footprint = shared.footprint.with_overhead(hw.defaults.runtime_overhead_gb * GB)
        from .engines import speed_range

        self.scalar = ScalarStep(self.device) if scalar_applies(self.device, hw, pp) else None
        self.decode_range = speed_range(engine, "decode")
        self.prefill_range = speed_range(engine, "prefill")

    @property
    def devices(self) -> int:
        return max(self.tp, self.ep) * self.pp

    def efficiency_at(self, batch: int) -> Efficiency:
        """A measured profile's overheads depend on the batch (Hardware.overheads_at); everything else does not."""
        return resolve_efficiency(self.hw, *self.overrides.values(), self.engine, self.fmt, self.spec.n_layers, batch)

    def _bandwidth(self, batch, depth, gen) -> np.ndarray:
        """The datasheet bandwidth; a measured profile's read rate at the decode step's working set."""
        if not self.hw.bandwidth_curve:
            return np.full(np.broadcast(batch, depth, gen).size, self.hw.bandwidth_gbps)
        unit = Efficiency(1.0, 1.0, 0.0, 0.0, "ceiling")
        probe = decode_times(self.device, unit, batch, depth, gen, np.float64(self.hw.bandwidth_gbps),
                             ceiling_only=True)
        return np.array([self.hw.bandwidth_at(x) for x in probe.bytes])

    def times(self, batch, prompt, depth, gen, rows: bool = False) -> Times:
        """Decode and prefill of batch sequences that prefill `prompt` tokens and decode `gen` from a KV cache
        `depth` deep: arrays broadcast together (flattened)."""
        batch, prompt, depth, gen = (x.reshape(-1) for x in np.broadcast_arrays(
            *(np.asarray(v, dtype=float) for v in (batch, prompt, depth, gen))))
        bw = self._bandwidth(batch, depth, gen)
        eff = self.efficiency
        if self.per_batch_overhead:
            effs = {b: self.efficiency_at(int(b)) for b in np.unique(batch)}
            step_us = np.array([effs[b].step_overhead_us for b in batch])
            eff = replace(eff, step_overhead_us=step_us)
        decode = decode_times(self.device, eff, batch, depth, gen, bw, rows=rows)
        # the prompt on top of whatever part of the context it does not cover
        prefill = prefill_times(self.device, eff, batch, prompt, np.maximum(0, depth - prompt), bw, rows=rows)
        ceiling = decode.ceiling_s
        if self.pp > 1:
            ceiling = pipelined_decode_ceiling(self.device, eff, batch, depth, gen, bw)
        return Times(decode, prefill, ceiling, bw)

    # ------------------------------------------------------------------------------------------- one workload

    def predict(self, batch: int = 1, prompt: int = 512, context: int | None = None, gen: int = 256) -> Prediction:
        check_workload(batch=batch, prompt=prompt, context=context, gen=gen)
        spec, hw, fmt = self.spec, self.hw, self.fmt
        depth = prompt if context is None else context
        eff = self.efficiency_at(batch) if self.per_batch_overhead else self.efficiency
        d, p, ceiling_s, bandwidth = self._one(eff, batch, prompt, depth, gen)
        notes = list(spec.notes) + list(self.notes)
        mem = memory_budget(spec, fmt, self.kv_bits, batch, prompt, depth + gen, self.tp, hw.memory_gb,
                            hw.defaults.runtime_overhead_gb, self.pp, self.footprint)
        if not mem.fits:
            need = f"needs {mem.min_devices} devices" if mem.min_devices else "does not fit on any number of devices"
            if self.ep > 1 and mem.min_devices:
                need = f"needs --ep {mem.min_devices}" + (f" in each of the {self.pp} stages" if self.pp > 1 else "")
            elif self.pp > 1 and mem.min_devices:
                need = f"needs tp {mem.min_devices} in each of the {self.pp} stages"
            notes.append(f"does not fit: {mem.total_gb:.1f} GB per device > {hw.memory_gb:g} GiB ({need}); speeds are "
                         "for the workload as if it fitted")
        if self.device.no_peak and hw.estimated_peaks:
            assumed = ", ".join(f"{d} {hw.peak_tflops[d]:g} TFLOPS" for d in hw.estimated_peaks if hw.peak_tflops.get(d))
            why = "its compute rates were measured by one kernel at a few shapes, which other kernels beat" \
                if hw.measured else "it has no published compute peak"
            notes.append(f"{hw.id}: {why}; the ceiling does not bound compute (its prefill counts memory only, not a "
                         f"bound on compute-bound work); the estimate assumes {assumed}")
        elif self.device.no_peak:
            notes.append(f"{hw.id} publishes no compute peak: compute time is taken as zero, so compute-bound figures "
                         "(prefill) are not bounded")
        if spec.max_position and depth + gen > spec.max_position:
            notes.append(f"context {depth + gen} exceeds the model's max_position_embeddings ({spec.max_position})")
        if spec.moe is not None:
            from .step import expected_experts

            moe, n = spec.moe, batch
            routed = expected_experts(moe.n_experts, moe.top_k, n, self.routing_skew)
            uniform = expected_experts(moe.n_experts, moe.top_k, n)
            how = (f"Zipf-skewed routing (exponent {self.routing_skew:g}): {float(routed):.1f} distinct experts per "
                   f"layer at batch {n} (uniform: {float(uniform):.1f})" if self.routing_skew else
                   f"uniform routing ({float(uniform):.1f} distinct experts per layer at batch {n}; --routing-skew "
                   "for a skewed one)")
            notes.append(f"MoE: the ceiling reads the fewest experts a batch can touch ({moe.top_k} of "
                         f"{moe.n_experts} per layer, every token routed alike), so no routing beats it; the "
                         f"estimate assumes {how}")
        if self.ep > 1:
            dp = self.ep // self.tp
            notes.append(f"expert parallel over {self.ep} devices: {spec.moe.n_experts // self.ep} whole experts on "
                         f"each, the rest tp {self.tp} in {dp} data-parallel replica{'s' if dp > 1 else ''}, the "
                         f"busiest holding {-(-batch // dp)} of the {batch} sequences" + (
                             f", and two all-to-alls per MoE layer (each token's hidden state to the devices of its "
                             f"{spec.moe.top_k} experts and back)" if dp > 1 else "") +
                         "; figures are per device, with the routed tokens spread evenly over the experts' devices (a "
                         "device busier than average slows the step: the estimate does not count that imbalance)")
        if self.pp > 1:
            notes.append(f"layer split over {self.pp} stages: a step passes the stages in turn (the estimate: the whole "
                         "model's step plus the hand-offs); the ceiling lets an engine pipeline micro-batches of the "
                         f"batch (the best of 1..{self.pp}); bytes and the operator table are the whole model's, each "
                         f"stage reads 1/{self.pp} of them")
        estimate_s = d.estimate_s
        d_low, d_high = self.decode_range
        p_low, p_high = self.prefill_range
        d_bytes, d_kv = d.bytes, d.kv_bytes
        decode_bound = "compute" if d.compute_s > d.memory_s + d.link_s else "memory"
        decode = make(
            DecodeResult,
            ceiling_tok_s=1 / ceiling_s, estimate_tok_s=1 / estimate_s,
            estimate_low_tok_s=min(d_low / estimate_s, 1 / ceiling_s),
            estimate_high_tok_s=min(d_high / estimate_s, 1 / ceiling_s),
            ceiling_throughput_tok_s=batch / ceiling_s, estimate_throughput_tok_s=batch / estimate_s,
            tpot_floor_ms=ceiling_s * 1e3, tpot_ms=estimate_s * 1e3, bytes_per_step=d_bytes,
            weight_bytes_per_step=d.weight_bytes, kv_bytes_per_step=d_kv, flops_per_step=d.flops,
            intensity_flop_per_byte=d.flops / d_bytes, bound=decode_bound,
            memory_bound_by=None if decode_bound == "compute" else ("kv_cache" if d_kv / d_bytes > 0.5 else "weights"),
            compute_ms=d.compute_s * 1e3, memory_ms=d.memory_s * 1e3,
            link_ms=d.link_s * 1e3, ceiling_bytes_per_step=d.ceiling_bytes,
        )
        p_ceiling, p_estimate = p.ceiling_s, p.estimate_s
        prefill = make(
            PrefillResult,
            ttft_floor_ms=p_ceiling * 1e3, ttft_ms=p_estimate * 1e3,
            ttft_low_ms=max(p_estimate / p_high, p_ceiling) * 1e3, ttft_high_ms=max(p_estimate / p_low, p_ceiling) * 1e3,
            ceiling_tok_s=batch * prompt / p_ceiling, estimate_tok_s=batch * prompt / p_estimate,
            flops=p.flops, bytes=p.bytes, intensity_flop_per_byte=p.flops / p.bytes,
            bound="compute" if p.compute_s > p.memory_s + p.link_s else "memory",
            compute_ms=p.compute_s * 1e3, memory_ms=p.memory_s * 1e3, link_ms=p.link_s * 1e3,
        )
        return make(
            Prediction, model=self.model_info, hardware=self._hardware_info(bandwidth),
            workload=make(Workload, weights=fmt.id, kv_cache=self.kv_name, batch=batch, prompt=prompt, context=depth,
                          gen=gen, tp=self.tp, engine=self.engine, pp=self.pp, ep=self.ep),
            efficiency=eff, decode=decode, prefill=prefill, memory=mem,
            operators=self._rows("decode", d) + self._rows("prefill", p), notes=tuple(notes))

    @property
    def model_info(self) -> ModelInfo:
        if not hasattr(self, "_model_info"):
            spec = self.spec
            self._model_info = ModelInfo(spec.id, spec.model_type, self.counts.total, self.counts.active,
                                         self.weight_bytes_total, self.fmt.id, spec.source)
        return self._model_info

    def _hardware_info(self, bandwidth: float) -> HardwareInfo:
        """The device as predict reports it, at the bandwidth used (a measured profile's at the working set)."""
        hw, fmt = self.hw, self.fmt
        if getattr(self, "_hardware_args", (None,))[0] != bandwidth:
            ridge = hw.ridge_point(fmt.compute) if bandwidth == hw.bandwidth_gbps else \
                replace(hw, bandwidth_gbps=bandwidth).ridge_point(fmt.compute)
            self._hardware_args = (bandwidth, ridge, *reversed(hw.peak(fmt.compute)))
        _, ridge, dtype, tflops = self._hardware_args
        return HardwareInfo(hw.id, hw.name, bandwidth, hw.memory_gb, dict(hw.peak_tflops), hw.link_gbps, ridge, dtype,
                            tflops, hw.confidence, hw.sources, hw.aliases, hw.memory_type, hw.sm_cycles_per_s,
                            hw.quantized_matmul_tops, hw.compute_capability)

    def _one(self, eff: Efficiency, batch: int, prompt: int, depth: int, gen: int):
        """(decode, prefill, decode ceiling s, bandwidth GB/s) of one workload: in plain floats where scalar.py
        covers the step, else the first workload of the vectorised path."""
        if self.scalar is not None:
            bw = self.hw.bandwidth_gbps
            decode = self.scalar.decode(eff, batch, depth, gen, bw)
            return decode, self.scalar.prefill(eff, batch, prompt, max(0, depth - prompt), bw), decode.ceiling_s, bw
        t = self.times(batch, prompt, depth, gen, rows=True)
        return (ScalarPhase.first(t.decode), ScalarPhase.first(t.prefill), float(t.decode_ceiling_s[0]),
                float(t.bandwidth_gbps[0]))

    def _rows(self, phase: str, times: ScalarPhase) -> tuple[OperatorRow, ...]:
        """The operator table: groups of the same name summed (the attention of every kind of layer, ...)."""
        out = []
        for (name, kind, count, dtype), (flops, w, kv, act, comm, ceiling, estimate, compute, memory) in zip(
                self.row_info, times.rows):
            moved = w + kv + act
            bound = "link" if kind in LINK_KINDS else ("compute" if compute > memory else "memory")
            out.append(OperatorRow.of(phase, name, kind, count, flops, w, kv, act, comm,
                                      flops / moved if moved else None, dtype, ceiling * 1e3, estimate * 1e3, bound))
        return tuple(out)

    @property
    def row_info(self) -> list[tuple[str, str, int, str]]:
        """(name, kind, instances, dtype used) of each row of the operator table."""
        if not hasattr(self, "_row_info"):
            info: dict = {}
            for g, dtype in zip(self.step.groups, self.device.dtypes):
                name, kind, count, first = info.get(g.name, (g.name, g.kind, 0, dtype))
                info[g.name] = (name, kind, count + g.count, first)
            self._row_info = [info[name] for name in self.step.rows]
        return self._row_info


_CACHE: dict = {}


@dataclass(frozen=True)
class _DeviceFree:
    """What compiling does not need a device for: shared by every device a model is compared on."""

    spec: ModelSpec  # spec and fmt are held so that their ids, the cache key, stay unique
    fmt: WeightFormat
    step: CompiledStep
    counts: object
    footprint: Footprint
    weight_bytes_total: float


_DEVICE_FREE: dict = {}


def _device_free(spec: ModelSpec, fmt: WeightFormat, kv: float, tp: int, pp: int,
                 routing_skew: float = 0.0, ep: int = 1) -> _DeviceFree:
    key = (id(spec), id(fmt), kv, tp, pp, routing_skew, ep)
    hit = _DEVICE_FREE.get(key)
    if hit is None:
        if len(_DEVICE_FREE) > 256:
            _DEVICE_FREE.clear()
        footprint = Footprint(spec, fmt, kv, 0.0, pp, ep)
        whole = footprint if pp == 1 and ep == 1 else Footprint(spec, fmt, kv, 0.0)
        hit = _DEVICE_FREE[key] = _DeviceFree(spec, fmt, CompiledStep(spec, fmt, kv, tp, pp, routing_skew, ep),
                                              param_counts(spec),
                                              footprint, float(whole.weights(1)))
    return hit


def _key(value):
    """A cache key for a model or device argument: names and unchanged files; None for objects."""
    if isinstance(value, (str, Path)):
        try:
            st = os.stat(value)
        except (OSError, ValueError):
            return str(value)
        return (str(value), st.st_mtime_ns) if stat.S_ISREG(st.st_mode) else str(value)
    return None


def compile(model: str | Path | ModelSpec, hardware: str | Path | Hardware, *, weights: str | WeightFormat | None = None,
            kv_cache: str | None = None, tp: int = 1, pp: int = 1, engine: str | None = None,
            bandwidth_efficiency: float | None = None, compute_efficiency: float | None = None,
            step_overhead_us: float | None = None, routing_skew: float = 0.0, ep: int = 1) -> Compiled:
    """`model` on `hardware` in `weights` (default: the checkpoint's dtype) with a `kv_cache` format (default
    f16, or the weights' float type), tp-way tensor parallel in each of pp pipeline stages (ep > 1: a mixture
    of experts' experts spread over ep devices per stage, the rest in ep / tp data-parallel replicas), timed
    with `engine`'s fitted profile (else the device-class defaults). The same arguments return the same object
    (cached)."""
    key = (_key(model), _key(hardware), weights if isinstance(weights, (str, type(None))) else None, kv_cache, tp,
           pp, engine, bandwidth_efficiency, compute_efficiency, step_overhead_us, routing_skew, ep)
    cacheable = key[0] is not None and key[1] is not None and (weights is None or isinstance(weights, str))
    try:
        hit = _CACHE.get(key) if cacheable else None  # the same arguments were checked when it was compiled
    except TypeError:  # an unhashable argument: the checks below say what is wrong with it
        hit, cacheable = None, False
    if hit is not None:
        return hit
    for name, value in (("tp", tp), ("pp", pp), ("ep", ep)):
        require_positive(name, value)
        if value > MAX_PARALLEL:
            raise UserError(f"{name} {value:,} is more devices than any deployment (at most {MAX_PARALLEL:,})")
    for name, value in (("weights", weights), ("kv_cache", kv_cache), ("engine", engine)):
        if isinstance(value, str) and not value.strip():
            raise UserError(f"{name} is empty; leave it out for the default, or name one")
    if not (isinstance(routing_skew, (int, float)) and math.isfinite(routing_skew) and 0 <= routing_skew <= 5):
        raise UserError(f"routing_skew must be a Zipf exponent in [0, 5] (0: uniform routing), got {routing_skew!r}")
    spec = load_model(model)
    check_tp(spec, tp)
    check_pp(spec, pp)
    check_ep(spec, tp, ep)
    hw = load_hardware(hardware)
    if not weights and spec.checkpoint_dtype.startswith("quantized:"):
        raise UserError(f"{spec.id}'s checkpoint is quantised with {spec.checkpoint_dtype.split(':', 1)[1]}, which is "
                        "not modelled yet; say what its weights are with --weights (e.g. int4-gptq, fp8)")
    fmt = load_format(weights) if weights else spec.file_format or load_format(spec.checkpoint_dtype)
    kv_name = kv_cache or ("f32" if fmt.id == "f32" else "bf16" if fmt.id == "bf16" else "f16")
    notes: tuple[str, ...] = ()
    from .engines import llama_cpp_view, runs_llama_cpp_cpu

    if runs_llama_cpp_cpu(hw, fmt, engine):
        hw = llama_cpp_view(hw)
        notes = (f"{hw.id} runs {fmt.id} through llama.cpp's CPU kernels: the estimate streams at the measured read "
                 "rate and computes every path at the measured fp32 rate"
                 + (f" (not {engine!r}'s profile, fitted on GPUs)" if engine else "")
                 + "; llama.cpp's own kernel rates and per-token costs on this machine: bench FILE.gguf --engine "
                 "llama.cpp",)
        engine = None
    overrides = dict(bandwidth_efficiency=bandwidth_efficiency, compute_efficiency=compute_efficiency,
                     step_overhead_us=step_overhead_us)
    compiled = Compiled(spec, hw, fmt, kv_name, tp, pp, engine, overrides, routing_skew, ep, notes)
    if cacheable:
        if len(_CACHE) > 256:
            _CACHE.clear()
        _CACHE[key] = compiled
    return compiled
