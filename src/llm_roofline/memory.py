"""What has to fit in device memory: weights, KV cache, activation workspace, runtime overhead (per device)."""

from __future__ import annotations

from collections import Counter
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


def weight_bytes(spec: ModelSpec, fmt: WeightFormat, tp: int = 1) -> float:
    """Bytes of all weights on one device: matmuls split tp ways, embedding and norms replicated."""
    total = 0.0
    # identical layers counted once each kind (a 61-layer model has two or three kinds of layer)
    groups = [(g, n) for layer, n in Counter(spec.layers).items() for g in layer_weights(spec, layer)]
    for g, n in groups + [(g, 1) for g in global_weights(spec)]:
        share = 1 if g.kind in ("norm", "embedding") else tp
        total += n * g.params * group_bits(g, spec, fmt) / 8 / share
    return total


def kv_cache_bytes(spec: ModelSpec, kv_bits: float, batch: int, length: float, tp: int = 1) -> float:
    """Cache for `batch` sequences of `length` tokens; sliding-window layers keep only their window."""
    total = 0.0
    for layer in spec.layers:
        kept = length if layer.window is None else min(length, layer.window)
        total += kept * kv_bytes_per_token(spec, layer, kv_bits, tp) + recurrent_state_bytes(spec, layer, tp)
    return batch * total


def activation_bytes(spec: ModelSpec, fmt: WeightFormat, batch: int, prompt: int, tp: int = 1) -> float:
    """Peak working set of a prefill of batch x prompt tokens, one layer at a time (flash attention: no
    score matrix), plus fp32 logits of the last position of each sequence."""
    h = spec.hidden_size
    widest = max(
        max(layer.intermediate * (2 if spec.mlp_gated else 1),
            (spec.moe.top_k * 2 * spec.moe.expert_intermediate) if spec.moe else 0,
            layer.n_heads * layer.head_dim * 3)
        for layer in spec.layers
    )
    tokens = batch * prompt
    return tokens * (4 * h + widest / tp) * fmt.activation_bytes + batch * spec.vocab_size * 4 / tp


def memory_budget(spec: ModelSpec, fmt: WeightFormat, kv_bits: float, batch: int, prompt: int, length: int,
                  tp: int, capacity_gb: float, overhead_gb: float) -> MemoryResult:
    def total(b: int, n: float, devices: int) -> float:
        return (weight_bytes(spec, fmt, devices) + kv_cache_bytes(spec, kv_bits, b, n, devices)
                + activation_bytes(spec, fmt, b, min(prompt, n), devices) + overhead_gb * GB)

    capacity = capacity_gb * GB
    weights = weight_bytes(spec, fmt, tp)
    kv = kv_cache_bytes(spec, kv_bits, batch, length, tp)
    acts = activation_bytes(spec, fmt, batch, prompt, tp)
    used = weights + kv + acts + overhead_gb * GB
    min_devices = next((n for n in _device_counts() if total(batch, length, n) <= capacity), None)
    max_batch = _largest(lambda b: total(b, length, tp) <= capacity, 1 << 24)
    max_context = _largest(lambda n: total(batch, n, tp) <= capacity, 1 << 30)
    per_token = kv_cache_bytes(spec, kv_bits, 1, 1, tp) - kv_cache_bytes(spec, kv_bits, 1, 0, tp)
    return MemoryResult(
        weights_gb=weights / GB, kv_cache_gb=kv / GB, activations_gb=acts / GB, runtime_overhead_gb=overhead_gb,
        total_gb=used / GB, capacity_gb=capacity_gb, fits=used <= capacity, min_devices=min_devices,
        max_batch=max_batch, max_context=max_context, model_max_context=spec.max_position,
        kv_bytes_per_token=per_token, per_device=tp > 1,
    )


def _device_counts():
    n = 1
    while n <= MAX_DEVICES:
        yield n
        n += 1 if n < 16 else 8


def _largest(fits, upper: int) -> int:
    """Largest integer x in [0, upper] with fits(x), for fits monotone non-increasing in x."""
    if not fits(1):
        return 0
    lo, hi = 1, 2
    while hi <= upper and fits(hi):
        lo, hi = hi, hi * 2
    hi = min(hi, upper + 1)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


__all__ = ["MemoryResult", "memory_budget", "weight_bytes", "kv_cache_bytes", "activation_bytes"]
