"""What has to fit in device memory: weights, KV cache, activation workspace, runtime overhead (per device)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .architecture import ModelSpec, global_weights, layer_weights
from .formats import WeightFormat
from .ops import group_bits, kv_bytes_per_token, recurrent_state_bytes

GB = 1e9
MAX_DEVICES = 4096


@dataclass(frozen=True)
class MemoryResult:
    weights_gb: float
    kv_cache_gb: float
    activations_gb: float
    runtime_overhead_gb: float
    total_gb: float
    capacity_gb: float
    fits: bool
    min_devices: int | None  # smallest tensor-parallel group whose per-device share fits (None: none up to 4096)
    max_batch: int  # largest batch that fits at this workload's context (0: not even one sequence)
    max_context: int  # longest context (tokens) that fits at this workload's batch (0: none)
    model_max_context: int | None  # max_position_embeddings, the model's own limit
    kv_bytes_per_token: float  # per sequence, all layers, this device
    per_device: bool  # figures are per device of a tensor-parallel group (tp > 1)

    def to_dict(self) -> dict:
        return asdict(self)


def _weight_split(spec: ModelSpec, fmt: WeightFormat) -> tuple[float, float]:
    """(replicated, sharded) weight bytes: embedding and norms sit whole on every device, matmuls split tp ways."""
    replicated = sharded = 0.0
    groups = [(g, n) for layer, n in spec.layer_kinds for g in layer_weights(spec, layer)]
    for g, n in groups + [(g, 1) for g in global_weights(spec)]:
        size = n * g.params * group_bits(g, spec, fmt) / 8
        if g.kind in ("norm", "embedding"):
            replicated += size
        else:
            sharded += size
    return replicated, sharded


def weight_bytes(spec: ModelSpec, fmt: WeightFormat, tp: int = 1) -> float:
    """Bytes of all weights on one device: matmuls split tp ways, embedding and norms replicated."""
    replicated, sharded = _weight_split(spec, fmt)
    return replicated + sharded / tp


def _kv_terms(spec: ModelSpec, kv_bits: float, tp: int) -> tuple[list[tuple[float, float | None]], float]:
    """Per kind of layer (bytes per cached token x count, window or None), and the fixed per-sequence state."""
    per_token, state = [], 0.0
    for layer, n in spec.layer_kinds:
        per_token.append((n * kv_bytes_per_token(spec, layer, kv_bits, tp), layer.window))
        state += n * recurrent_state_bytes(spec, layer, tp)
    return per_token, state


def _kept_bytes(per_token: list[tuple[float, float | None]], length: float) -> float:
    """KV bytes of one sequence `length` tokens deep: sliding-window layers keep only their window."""
    return sum(b * (length if w is None else min(length, w)) for b, w in per_token)


def kv_cache_bytes(spec: ModelSpec, kv_bits: float, batch: int, length: float, tp: int = 1) -> float:
    """Cache for `batch` sequences of `length` tokens; sliding-window layers keep only their window."""
    per_token, state = _kv_terms(spec, kv_bits, tp)
    return batch * (_kept_bytes(per_token, length) + state)


def _activation_terms(spec: ModelSpec, fmt: WeightFormat, tp: int) -> tuple[float, float]:
    """(bytes per prompt token, bytes per sequence) of the prefill's working set."""
    h = spec.hidden_size
    widest = max(
        max(layer.intermediate * (2 if spec.mlp_gated else 1),
            (spec.moe.top_k * 2 * spec.moe.expert_intermediate) if spec.moe else 0,
            layer.n_heads * layer.head_dim * 3)
        for layer, _ in spec.layer_kinds
    )
    return (4 * h + widest / tp) * fmt.activation_bytes, spec.vocab_size * 4 / tp


def activation_bytes(spec: ModelSpec, fmt: WeightFormat, batch: int, prompt: int, tp: int = 1) -> float:
    """Peak working set of a prefill of batch x prompt tokens, one layer at a time (flash attention: no
    score matrix), plus fp32 logits of the last position of each sequence."""
    per_token, per_sequence = _activation_terms(spec, fmt, tp)
    return batch * (prompt * per_token + per_sequence)


class _Footprint:
    """Bytes on one device of a tp-way group as closed forms: fixed + batch x (KV(length) + state + prefill
    working set(min(prompt, length))), where KV is piecewise linear in the length (windows cap it)."""

    def __init__(self, spec: ModelSpec, fmt: WeightFormat, kv_bits: float, prompt: int, tp: int,
                 overhead_bytes: float, split: tuple[float, float]):
        self.fixed = split[0] + split[1] / tp + overhead_bytes
        self.kv, self.state = _kv_terms(spec, kv_bits, tp)
        self.act_token, self.act_sequence = _activation_terms(spec, fmt, tp)
        self.prompt = prompt

    def per_sequence(self, length: float) -> float:
        return (_kept_bytes(self.kv, length) + self.state + min(self.prompt, length) * self.act_token
                + self.act_sequence)

    def total(self, batch: float, length: float) -> float:
        return self.fixed + batch * self.per_sequence(length)

    def max_batch(self, length: float, capacity: float, upper: int) -> int:
        """Largest batch whose total fits (total is affine in the batch): solved, then checked at +-1."""
        room, each = capacity - self.fixed, self.per_sequence(length)
        if room < each:
            return 0
        b = min(upper, int(room // each) if each > 0 else upper)
        while b > 1 and self.total(b, length) > capacity:
            b -= 1
        while b < upper and self.total(b + 1, length) <= capacity:
            b += 1
        return b

    def max_length(self, batch: int, capacity: float, upper: int) -> int:
        """Longest length that fits: the total is piecewise linear and non-decreasing in the length, with kinks
        at the prompt and at each window; solved on the segment where it crosses the capacity."""
        if self.total(batch, 1) > capacity:
            return 0
        kinks = sorted({upper} | {k for k in (self.prompt, *(w for _, w in self.kv if w)) if 1 < k < upper})
        lo = 1
        for hi in kinks:
            if hi <= lo:
                continue
            if self.total(batch, hi) <= capacity:
                lo = hi
                continue
            slope = (self.total(batch, hi) - self.total(batch, lo)) / (hi - lo)
            n = lo + int((capacity - self.total(batch, lo)) // slope)
            n = max(lo, min(n, hi - 1))
            while n > lo and self.total(batch, n) > capacity:
                n -= 1
            while n + 1 < hi and self.total(batch, n + 1) <= capacity:
                n += 1
            return n
        return lo


def memory_budget(spec: ModelSpec, fmt: WeightFormat, kv_bits: float, batch: int, prompt: int, length: int,
                  tp: int, capacity_gb: float, overhead_gb: float) -> MemoryResult:
    capacity = capacity_gb * GB
    split = _weight_split(spec, fmt)
    here = _Footprint(spec, fmt, kv_bits, prompt, tp, overhead_gb * GB, split)
    weights = split[0] + split[1] / tp
    kv = batch * (_kept_bytes(here.kv, length) + here.state)
    acts = batch * (prompt * here.act_token + here.act_sequence)
    used = weights + kv + acts + overhead_gb * GB  # the whole prompt's prefill, whatever the length
    min_devices = next((n for n in _device_counts() if
                        _Footprint(spec, fmt, kv_bits, min(prompt, length), n, overhead_gb * GB, split)
                        .total(batch, length) <= capacity), None)
    per_token = _kept_bytes(here.kv, 1) - _kept_bytes(here.kv, 0)
    return MemoryResult(
        weights_gb=weights / GB, kv_cache_gb=kv / GB, activations_gb=acts / GB, runtime_overhead_gb=overhead_gb,
        total_gb=used / GB, capacity_gb=capacity_gb, fits=used <= capacity, min_devices=min_devices,
        max_batch=here.max_batch(length, capacity, 1 << 24), max_context=here.max_length(batch, capacity, 1 << 30),
        model_max_context=spec.max_position, kv_bytes_per_token=per_token, per_device=tp > 1,
    )


def _device_counts():
    n = 1
    while n <= MAX_DEVICES:
        yield n
        n += 1 if n < 16 else 8


__all__ = ["MemoryResult", "memory_budget", "weight_bytes", "kv_cache_bytes", "activation_bytes"]
