"""Timing operators on a device, and `predict`: the two answers (ceiling and estimate) for a workload.

Per operator: time = max(FLOPs / peak of its dtype, bytes / bandwidth)   (the roofline)
  ceiling:  datasheet peaks, 100% efficiency, no overhead          -> a bound reality must not beat
  estimate: peaks x achievable fractions, plus a fixed per-step overhead (and all-reduce latency)
A step's time is the sum over its operators; a run that generates G tokens averages the decode step over the
growing context (midpoint rule over at most 16 segments; the step time is linear in depth between window edges).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from .architecture import ModelSpec, load_model, param_counts
from .errors import UserError, require_positive
from .formats import WeightFormat, kv_bits, load_format
from .hardware import Hardware, load_hardware
from .memory import MemoryResult, memory_budget, weight_bytes
from .ops import Op, Step, step_ops

DECODE_SAMPLES = 16


@dataclass(frozen=True)
class Efficiency:
    bandwidth: float  # achievable fraction of peak memory bandwidth
    compute: float  # achievable fraction of peak matmul rate
    step_overhead_us: float  # per decode step: launches, scheduling, sampling
    allreduce_latency_us: float
    source: str
    int8_compute: float | None = None  # fraction of the int8 peak for quantised-activation kernels (else compute)
    prefill_overhead_us: float | None = None  # per prefill pass (else step_overhead_us)
    unpack_cycles_per_weight: float = 0.0  # SM cycles a decode kernel spends unpacking each block-quantised weight

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class OperatorRow:
    phase: str  # "decode" or "prefill"
    name: str
    kind: str
    count: int
    flops: float
    weight_bytes: float
    kv_bytes: float
    act_bytes: float
    comm_bytes: float
    intensity_flop_per_byte: float | None
    compute_dtype: str  # the dtype whose peak was used (after fallback)
    ceiling_ms: float
    estimate_ms: float
    bound: str  # "memory", "compute" or "link"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class StepTiming:
    ceiling_s: float
    estimate_s: float
    flops: float
    bytes: float
    weight_bytes: float
    kv_bytes: float
    compute_s: float  # ceiling time of the compute-bound operators
    memory_s: float  # ceiling time of the memory-bound operators
    link_s: float
    rows: tuple[OperatorRow, ...]

    @property
    def bound(self) -> str:
        return "compute" if self.compute_s > self.memory_s + self.link_s else "memory"


@dataclass(frozen=True)
class Workload:
    weights: str
    kv_cache: str
    batch: int
    prompt: int
    context: int  # KV depth when decoding starts
    gen: int
    tp: int
    engine: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class DecodeResult:
    ceiling_tok_s: float  # per sequence
    estimate_tok_s: float
    estimate_low_tok_s: float  # 10th-90th percentile of measured / estimate in public data (engines.py)
    estimate_high_tok_s: float
    ceiling_throughput_tok_s: float  # over the batch
    estimate_throughput_tok_s: float
    tpot_floor_ms: float
    tpot_ms: float
    bytes_per_step: float
    weight_bytes_per_step: float
    kv_bytes_per_step: float
    flops_per_step: float
    intensity_flop_per_byte: float
    bound: str  # "memory" or "compute"
    memory_bound_by: str | None  # "weights" or "kv_cache" when memory-bound
    compute_ms: float  # ceiling time of compute-bound operators per step
    memory_ms: float
    link_ms: float

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PrefillResult:
    ttft_floor_ms: float
    ttft_ms: float
    ttft_low_ms: float
    ttft_high_ms: float
    ceiling_tok_s: float  # prompt tokens per second over the batch
    estimate_tok_s: float
    flops: float
    bytes: float
    intensity_flop_per_byte: float
    bound: str
    compute_ms: float
    memory_ms: float
    link_ms: float

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ModelInfo:
    id: str
    model_type: str
    params_total: int
    params_active: int
    weight_bytes: float  # all weights in the chosen format, whole model
    weights_format: str
    source: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class HardwareInfo:
    id: str
    name: str
    bandwidth_gbps: float
    memory_gb: float
    peak_tflops: dict
    link_gbps: float
    ridge_point_flop_per_byte: float | None  # at the weights' matmul dtype
    matmul_dtype: str  # dtype whose peak the weights' matmuls run at (after fallback)
    matmul_tflops: float | None
    confidence: str | None
    sources: tuple[str, ...]
    aliases: tuple[str, ...] = ()
    # further inputs of the estimate: HBM or not (an engine's bw_factor_hbm), SM cycles per second (unpack time),
    # the rate quantised-activation kernels are scaled by (Hardware.quantized_matmul_tops), the CUDA compute
    # capability (engines.replays_graph)
    memory_type: str | None = None
    sm_cycles_per_s: float | None = None
    quantized_matmul_tops: float | None = None
    compute_capability: float | None = None  # NVIDIA: decides whether an engine replays CUDA graphs

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Prediction:
    model: ModelInfo
    hardware: HardwareInfo
    workload: Workload
    efficiency: Efficiency
    decode: DecodeResult
    prefill: PrefillResult
    memory: MemoryResult
    operators: tuple[OperatorRow, ...]
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict:
        return {
            "model": self.model.to_dict(),
            "hardware": self.hardware.to_dict(),
            "workload": self.workload.to_dict(),
            "efficiency": self.efficiency.to_dict(),
            "decode": self.decode.to_dict(),
            "prefill": self.prefill.to_dict(),
            "memory": self.memory.to_dict(),
            "operators": [row.to_dict() for row in self.operators],
            "notes": list(self.notes),
        }


# ---------------------------------------------------------------------------------------------------------------


def _weight_stream_s(op: Op, hw: Hardware, dtype: str) -> float | None:
    """Seconds a matmul takes at the weight-streaming rates a measured profile reached for matrices of its size
    and shape times this many vectors (the activations' traffic was part of that measurement), scaled to the
    cache level the step's working set lives in. None without measured curves."""
    total = sum(size for size, _ in op.matrices)
    seconds = 0.0
    for size, aspect in op.matrices:
        stream = hw.weight_stream_gbps(dtype, op.tokens, size, aspect)
        if not stream:
            return None
        seconds += op.weight_bytes * size / total / (stream * 1e9)
    large = hw.bandwidth_curve[-1][1] if hw.bandwidth_curve else hw.bandwidth_gbps
    return seconds * large / hw.bandwidth_gbps


def unpack_s_per_cycle(op: Op, hw: Hardware) -> float:
    """Seconds an operator spends unpacking its block-quantised weights per SM cycle spent on each: its weights /
    (SMs x clock), x unpack_cycles_per_weight: seconds. Every kernel unpacks each weight at least once per step,
    whatever the batch, so the term never switches off as work grows (no kernel-path threshold: see time_op for
    where it is paid)."""
    if op.quantized_weights and hw.sm_cycles_per_s:
        return op.quantized_weights / hw.sm_cycles_per_s
    return 0.0


def allreduce_hop_us(hw: Hardware) -> float:
    """Latency of one step of a ring all-reduce (2(N-1) steps over N devices) on the device's link, in µs: NCCL's
    own tuning model for small messages (src/graph/tuning.cc, hwLat, ring, LL protocol): 0.4 over NVLink-class
    links, 1.0 over PCIe. The fixed part of each all-reduce (launch, synchronisation) is the engine profile's
    allreduce_us, fitted."""
    return 0.4 if hw.link_gbps_bidir else 1.0


def time_op(op: Op, hw: Hardware, eff: Efficiency) -> tuple[float, float, float, float, str]:
    """(ceiling s, estimate s, compute s, memory s, dtype used) of one instance of an operator."""
    peak, dtype = hw.peak(op.compute)
    t_compute = op.flops / (peak * 1e12) if peak else 0.0
    t_memory = op.bytes / (hw.bandwidth_gbps * 1e9)
    if op.kind == "allreduce":
        t_link = op.comm_bytes / (hw.link_gbps * 1e9)
        latency_us = eff.allreduce_latency_us + op.latency_steps * allreduce_hop_us(hw)
        return t_link, t_link / eff.bandwidth + latency_us * 1e-6, 0.0, 0.0, dtype
    ceiling = max(t_compute, t_memory)
    compute_eff, t_kernel = eff.compute, t_compute
    # quantised-activation kernels (Hardware.quantized_matmul_tops); a device with no int8 rate has no such path
    if dtype == "int8" and eff.int8_compute and peak and hw.quantized_matmul_tops:
        compute_eff, t_kernel = eff.int8_compute, op.flops / (hw.quantized_matmul_tops * 1e12)
    # Unpacking is SM work on weights as they arrive: at decode batches there is too little arithmetic to hide it
    # and it adds to the weight stream; once the multiply is compute-bound it overlaps with it. One smooth rule
    # for every batch, so more tokens never take less time.
    t_unpack = eff.unpack_cycles_per_weight * unpack_s_per_cycle(op, hw)
    estimate = max(t_kernel / compute_eff, t_memory / eff.bandwidth + t_unpack)
    t_stream = _weight_stream_s(op, hw, dtype) if op.kind == "matmul" and op.tokens and op.matrices else None
    if t_stream is not None:  # a measured profile: the time this machine took for such matmuls (activations in)
        estimate = max(estimate, t_stream)
    return ceiling, estimate, t_compute, t_memory, dtype


def time_step(ops: list[Op], hw: Hardware, eff: Efficiency, phase: str) -> StepTiming:
    rows: dict[str, dict] = {}
    totals = dict(ceiling=0.0, estimate=0.0, flops=0.0, bytes=0.0, weight=0.0, kv=0.0, compute=0.0, memory=0.0,
                  link=0.0)
    for op in ops:
        ceiling, estimate, t_c, t_m, dtype = time_op(op, hw, eff)
        n = op.count
        row = rows.setdefault(op.name, dict(kind=op.kind, count=0, flops=0.0, weight_bytes=0.0, kv_bytes=0.0,
                                            act_bytes=0.0, comm_bytes=0.0, ceiling=0.0, estimate=0.0, t_c=0.0,
                                            t_m=0.0, dtype=dtype))
        row["count"] += n
        for key, value in (("flops", op.flops), ("weight_bytes", op.weight_bytes), ("kv_bytes", op.kv_bytes),
                           ("act_bytes", op.act_bytes), ("comm_bytes", op.comm_bytes), ("ceiling", ceiling),
                           ("estimate", estimate)):
            row[key] += n * value
        # Which side of the roofline the operator sits on decides where its time is booked.
        if op.kind == "allreduce":
            totals["link"] += n * ceiling
        elif t_c > t_m:
            row["t_c"] += n * ceiling
            totals["compute"] += n * ceiling
        else:
            row["t_m"] += n * ceiling
            totals["memory"] += n * ceiling
        totals["ceiling"] += n * ceiling
        totals["estimate"] += n * estimate
        totals["flops"] += n * op.flops
        totals["bytes"] += n * op.bytes
        totals["weight"] += n * op.weight_bytes
        totals["kv"] += n * op.kv_bytes
    out = []
    for name, r in rows.items():
        moved = r["weight_bytes"] + r["kv_bytes"] + r["act_bytes"]
        bound = "link" if r["kind"] == "allreduce" else ("compute" if r["t_c"] > r["t_m"] else "memory")
        out.append(OperatorRow(phase, name, r["kind"], r["count"], r["flops"], r["weight_bytes"], r["kv_bytes"],
                               r["act_bytes"], r["comm_bytes"], r["flops"] / moved if moved else None, r["dtype"],
                               r["ceiling"] * 1e3, r["estimate"] * 1e3, bound))
    overhead = eff.prefill_overhead_us if phase == "prefill" and eff.prefill_overhead_us is not None \
        else eff.step_overhead_us
    return StepTiming(totals["ceiling"], totals["estimate"] + overhead * 1e-6, totals["flops"],
                      totals["bytes"], totals["weight"], totals["kv"], totals["compute"], totals["memory"],
                      totals["link"], tuple(out))


def _average(steps: list[StepTiming]) -> StepTiming:
    """Mean of decode steps at several depths (the rows are averaged too, so the table adds up)."""
    n = len(steps)
    rows = []
    for i, first in enumerate(steps[0].rows):
        vals = [s.rows[i] for s in steps]
        numeric = {k: sum(getattr(v, k) for v in vals) / n for k in
                   ("flops", "weight_bytes", "kv_bytes", "act_bytes", "comm_bytes", "ceiling_ms", "estimate_ms")}
        moved = numeric["weight_bytes"] + numeric["kv_bytes"] + numeric["act_bytes"]
        bounds = [v.bound for v in vals]
        rows.append(OperatorRow(first.phase, first.name, first.kind, first.count, numeric["flops"],
                                numeric["weight_bytes"], numeric["kv_bytes"], numeric["act_bytes"],
                                numeric["comm_bytes"], numeric["flops"] / moved if moved else None,
                                first.compute_dtype, numeric["ceiling_ms"], numeric["estimate_ms"],
                                max(set(bounds), key=bounds.count)))
    mean = {f: sum(getattr(s, f) for s in steps) / n for f in
            ("ceiling_s", "estimate_s", "flops", "bytes", "weight_bytes", "kv_bytes", "compute_s", "memory_s",
             "link_s")}
    return StepTiming(**mean, rows=tuple(rows))


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
    changes = {k: v for k, v in (("bandwidth", bandwidth_efficiency), ("compute", compute_efficiency),
                                 ("step_overhead_us", step_overhead_us)) if v is not None}
    if compute_efficiency is not None:
        changes["int8_compute"] = None  # one compute efficiency for every dtype, as asked
    if step_overhead_us is not None:
        changes["prefill_overhead_us"] = None
    if overridden:
        changes["source"] = base.source + "; overridden by the caller"
    return replace(base, **changes)


MAX_TOKENS = 1 << 30  # batch, prompt, context, gen: far beyond any device's memory, small enough to stay exact


def check_tp(spec: ModelSpec, tp: int) -> None:
    """Tensor parallelism splits attention heads (and linear-attention value heads) evenly over the devices, as
    vLLM, SGLang and TensorRT-LLM require; KV heads split evenly or are replicated when there are fewer of them."""
    if tp == 1:
        return
    for layer, _ in spec.layer_kinds:
        heads = spec.linear_attention.n_value_heads if layer.attention == "linear" else layer.n_heads
        kv = heads if layer.attention in ("linear", "mla") else layer.n_kv_heads
        if heads % tp or (kv % tp and tp % kv):
            valid = [n for n in range(1, heads + 1) if not heads % n and (not kv % n or not n % kv)]
            raise UserError(f"--tp {tp} does not split {spec.id}'s {heads} attention heads ({kv} KV heads) evenly;"
                            f" valid: {', '.join(map(str, valid[:12]))}{', ...' if len(valid) > 12 else ''}")


def predict(
    model: str | Path | ModelSpec,
    hardware: str | Path | Hardware,
    *,
    weights: str | WeightFormat | None = None,
    kv_cache: str | None = None,
    batch: int = 1,
    prompt: int = 512,
    context: int | None = None,
    gen: int = 256,
    tp: int = 1,
    engine: str | None = None,
    bandwidth_efficiency: float | None = None,
    compute_efficiency: float | None = None,
    step_overhead_us: float | None = None,
) -> Prediction:
    """Decode and prefill speed, memory fit and the per-operator roofline of `model` on `hardware`.

    batch sequences each prefill `prompt` tokens, then decode `gen` tokens starting from a KV cache `context`
    tokens deep (default: the prompt). weights / kv_cache name formats (default: the checkpoint's dtype / f16).
    engine (llama.cpp-cuda, vllm, tensorrt-llm, ...) selects a fitted efficiency profile for the estimate and its
    range; without it the device-class defaults apply."""
    require_positive("batch", batch)
    require_positive("prompt", prompt)
    require_positive("gen", gen)
    require_positive("tp", tp)
    if context is not None:
        require_positive("context", context, allow_zero=True)
    for name, value in (("batch", batch), ("prompt", prompt), ("gen", gen), ("context", context or 0)):
        if value > MAX_TOKENS:
            raise UserError(f"{name} {value:,} is beyond what any device holds (at most {MAX_TOKENS:,})")
    for name, value in (("weights", weights), ("kv_cache", kv_cache), ("engine", engine)):
        if isinstance(value, str) and not value.strip():
            raise UserError(f"{name} is empty; leave it out for the default, or name one")
    spec = load_model(model)
    check_tp(spec, tp)
    hw = load_hardware(hardware)
    fmt = load_format(weights or spec.checkpoint_dtype)
    kv_name = kv_cache or ("f32" if fmt.id == "f32" else "bf16" if fmt.id == "bf16" else "f16")
    bits = kv_bits(kv_name)
    eff = resolve_efficiency(hw, bandwidth_efficiency, compute_efficiency, step_overhead_us, engine, fmt,
                             spec.n_layers, batch)
    depth = prompt if context is None else context
    notes = list(spec.notes)

    samples = min(gen, DECODE_SAMPLES)
    step_lists = [step_ops(spec, fmt, bits, Step(batch, 1, depth + (k + 0.5) * gen / samples, tp))
                  for k in range(samples)]
    if hw.bandwidth_curve:  # a measured profile: use the read rate of the cache level the step's bytes fit in
        working_set = sum(op.count * op.bytes for op in step_lists[len(step_lists) // 2])
        hw = replace(hw, bandwidth_gbps=hw.bandwidth_at(working_set))
    # Prefill: the prompt on top of whatever part of the context it does not cover.
    prefill = time_step(step_ops(spec, fmt, bits, Step(batch, prompt, max(0, depth - prompt), tp)), hw, eff,
                        "prefill")
    decode = _average([time_step(ops, hw, eff, "decode") for ops in step_lists])

    counts = param_counts(spec)
    mem = memory_budget(spec, fmt, bits, batch, prompt, depth + gen, tp, hw.memory_gb,
                        hw.defaults.runtime_overhead_gb)
    if not mem.fits:
        need = f"needs {mem.min_devices} devices" if mem.min_devices else "does not fit on any number of devices"
        notes.append(f"does not fit: {mem.total_gb:.1f} GB per device > {hw.memory_gb:g} GB ({need}); speeds are "
                     "for the workload as if it fitted")
    if hw.peak(fmt.compute)[0] is None:
        notes.append(f"{hw.id} publishes no compute peak: compute time is taken as zero, so compute-bound figures "
                     "(prefill) are not bounded")
    if spec.max_position and depth + gen > spec.max_position:
        notes.append(f"context {depth + gen} exceeds the model's max_position_embeddings ({spec.max_position})")

    from .engines import speed_range

    d_low, d_high = speed_range(engine, "decode")
    p_low, p_high = speed_range(engine, "prefill")
    kv_share = decode.kv_bytes / decode.bytes if decode.bytes else 0.0
    decode_bound = decode.bound
    decode_result = DecodeResult(
        ceiling_tok_s=1 / decode.ceiling_s,
        estimate_tok_s=1 / decode.estimate_s,
        estimate_low_tok_s=min(d_low / decode.estimate_s, 1 / decode.ceiling_s),
        estimate_high_tok_s=min(d_high / decode.estimate_s, 1 / decode.ceiling_s),
        ceiling_throughput_tok_s=batch / decode.ceiling_s,
        estimate_throughput_tok_s=batch / decode.estimate_s,
        tpot_floor_ms=decode.ceiling_s * 1e3,
        tpot_ms=decode.estimate_s * 1e3,
        bytes_per_step=decode.bytes,
        weight_bytes_per_step=decode.weight_bytes,
        kv_bytes_per_step=decode.kv_bytes,
        flops_per_step=decode.flops,
        intensity_flop_per_byte=decode.flops / decode.bytes,
        bound=decode_bound,
        memory_bound_by=None if decode_bound == "compute" else ("kv_cache" if kv_share > 0.5 else "weights"),
        compute_ms=decode.compute_s * 1e3,
        memory_ms=decode.memory_s * 1e3,
        link_ms=decode.link_s * 1e3,
    )
    prefill_result = PrefillResult(
        ttft_floor_ms=prefill.ceiling_s * 1e3,
        ttft_ms=prefill.estimate_s * 1e3,
        ttft_low_ms=max(prefill.estimate_s / p_high, prefill.ceiling_s) * 1e3,
        ttft_high_ms=max(prefill.estimate_s / p_low, prefill.ceiling_s) * 1e3,
        ceiling_tok_s=batch * prompt / prefill.ceiling_s,
        estimate_tok_s=batch * prompt / prefill.estimate_s,
        flops=prefill.flops,
        bytes=prefill.bytes,
        intensity_flop_per_byte=prefill.flops / prefill.bytes,
        bound=prefill.bound,
        compute_ms=prefill.compute_s * 1e3,
        memory_ms=prefill.memory_s * 1e3,
        link_ms=prefill.link_s * 1e3,
    )
    return Prediction(
        model=ModelInfo(spec.id, spec.model_type, counts.total, counts.active, weight_bytes(spec, fmt), fmt.id,
                        spec.source),
        hardware=HardwareInfo(hw.id, hw.name, hw.bandwidth_gbps, hw.memory_gb, dict(hw.peak_tflops), hw.link_gbps,
                              hw.ridge_point(fmt.compute), *reversed(hw.peak(fmt.compute)), hw.confidence,
                              hw.sources, hw.aliases, hw.memory_type, hw.sm_cycles_per_s, hw.quantized_matmul_tops,
                              hw.compute_capability),
        workload=Workload(fmt.id, kv_name, batch, prompt, depth, gen, tp, engine),
        efficiency=eff,
        decode=decode_result,
        prefill=prefill_result,
        memory=mem,
        operators=decode.rows + prefill.rows,
        notes=tuple(notes),
    )

