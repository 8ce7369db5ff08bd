"""What has to fit in device memory: weights, KV cache, activation workspace, runtime overhead (per device)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from .architecture import ModelSpec, global_weights, layer_weights
from .formats import WeightFormat
from .frozen import make
from .step import group_bits, kv_bytes_per_token, recurrent_state_bytes

GIB = 1 << 30  # device capacities (binary: HBM, GDDR and DRAM come in powers of two)
GB = 1e9
MAX_DEVICES = 4096


@dataclass(frozen=True)
class MemoryResult:
    weights_gb: float
    kv_cache_gb: float
    activations_gb: float
    runtime_overhead_gb: float
    total_gb: float
    capacity_gb: float  # as the device is sold: GiB (a "24 GB" card holds 24 x 2^30 bytes); the rest are 1e9
    fits: bool
    min_devices: int | None  # smallest tensor-parallel group whose per-device share fits (None: none up to 4096)
    max_batch: int  # largest batch that fits at this workload's context (0: not even one sequence)
    max_context: int  # longest context (tokens) that fits at this workload's batch (0: none)
    model_max_context: int | None  # max_position_embeddings, the model's own limit
    kv_bytes_per_token: float  # per sequence, all layers, this device
    per_device: bool  # figures are for the heaviest device of a tp x pp layout (more than one device)

    def to_dict(self) -> dict:
        return asdict(self)


def _weight_split(spec: ModelSpec, fmt: WeightFormat) -> dict[str, float]:
    """Weight bytes by where they sit: the layers' norms (whole on every device of a tp group) and matmuls (split
    tp ways), and the global embedding, its projection (OPT), final norm and untied lm_head."""
    out = dict(layer_norms=0.0, layer_matmuls=0.0, layer_experts=0.0, embedding=0.0, embed_proj=0.0, final_norm=0.0,
               lm_head=0.0)
    for layer, n in spec.layer_kinds:
        for g in layer_weights(spec, layer):
            where = "layer_norms" if g.kind == "norm" else "layer_experts" if g.op == "moe_experts" else "layer_matmuls"
            out[where] += n * g.params * group_bits(g, spec, fmt) / 8
    for g in global_weights(spec):
        out[g.op] += g.params * group_bits(g, spec, fmt) / 8
    return out


def _device_weights(split: dict[str, float], spec: ModelSpec, tp, pp: int = 1, ep: int = 1):
    """Weight bytes on the heaviest device of tp x pp: ceil(L / pp) of the L layers, and the embedding (first
    stage) or the final norm and output head (last stage), both when pp = 1; a tied head is the embedding table,
    which the last stage then holds too. Routed experts split tp ways, or ep ways under expert parallel."""
    layers = math.ceil(spec.n_layers / pp) / spec.n_layers * (
        split["layer_norms"] + split["layer_matmuls"] / tp + split["layer_experts"] / (ep if ep > 1 else tp))
    first = split["embedding"] + split["embed_proj"] / tp
    head = split["lm_head"] / tp if not spec.tie_embeddings else split["embedding"]
    last = split["final_norm"] + head
    if pp == 1:
        return layers + first + split["final_norm"] + split["lm_head"] / tp
    return layers + np.maximum(first, last)


def weight_bytes(spec: ModelSpec, fmt: WeightFormat, tp: int = 1, pp: int = 1) -> float:
    """Bytes of all weights on one device: matmuls split tp ways, embedding and norms replicated, layers split
    pp ways."""
    return float(_device_weights(_weight_split(spec, fmt), spec, tp, pp))


def _kv_terms(spec: ModelSpec, kv_bits: float, tp: int) -> tuple[list[tuple[float, float | None]], float]:
    """Per kind of layer (bytes per cached token x count, window or None), and the fixed per-sequence state."""
    per_token, state = [], 0.0
    for layer, n in spec.layer_kinds:
        per_token.append((n * kv_bytes_per_token(spec, layer, kv_bits, tp), layer.held or layer.window))
        state += n * recurrent_state_bytes(spec, layer, tp)
    return per_token, state


def _kept_bytes(per_token: list[tuple[float, float | None]], length):
    """KV bytes of one sequence `length` tokens deep: sliding-window layers keep only their window."""
    return sum(b * (length if w is None else np.minimum(length, w)) for b, w in per_token)


def kv_cache_bytes(spec: ModelSpec, kv_bits: float, batch: int, length: float, tp: int = 1) -> float:
    """Cache for `batch` sequences of `length` tokens; sliding-window layers keep only their window."""
    per_token, state = _kv_terms(spec, kv_bits, tp)
    return float(batch * (_kept_bytes(per_token, length) + state))


def _activation_coefficients(spec: ModelSpec, fmt: WeightFormat) -> tuple[float, float, float]:
    """The prefill's working set: bytes per prompt token whole on every device (the hidden state's buffers) and
    split tp ways (the widest intermediate), and fp32 logits per sequence (split tp ways)."""
    h = spec.hidden_size
    widest = max(
        max(layer.intermediate * (2 if spec.mlp_gated else 1),
            (spec.moe.top_k * 2 * spec.moe.expert_intermediate) if spec.moe else 0,
            layer.n_heads * layer.head_dim * 3)
        for layer, _ in spec.layer_kinds
    )
    return 4 * h * fmt.activation_bytes, widest * fmt.activation_bytes, spec.vocab_size * 4.0


def _activation_terms(spec: ModelSpec, fmt: WeightFormat, tp) -> tuple[float, float]:
    """(bytes per prompt token, bytes per sequence) of the prefill's working set."""
    fixed, split, sequence = _activation_coefficients(spec, fmt)
    return fixed + split / tp, sequence / tp


def activation_bytes(spec: ModelSpec, fmt: WeightFormat, batch: int, prompt: int, tp: int = 1) -> float:
    """Peak working set of a prefill of batch x prompt tokens, one layer at a time (flash attention: no
    score matrix), plus fp32 logits of the last position of each sequence."""
    per_token, per_sequence = _activation_terms(spec, fmt, tp)
    return batch * (prompt * per_token + per_sequence)


class Footprint:
    """Bytes on the heaviest device of a tp x pp layout as closed forms, on floats or numpy arrays:
    weights + overhead + batch x (KV(length) + state + prefill working set(min(prompt, length))), KV piecewise
    linear in the length (windows cap it) and a ceil(KV heads / tp) share of the heads."""

    def __init__(self, spec: ModelSpec, fmt: WeightFormat, kv_bits: float, overhead_bytes: float, pp: int = 1,
                 ep: int = 1):
        self.spec, self.fmt, self.pp, self.ep, self.overhead = spec, fmt, pp, ep, overhead_bytes
        self.split = _weight_split(spec, fmt)
        self.layer_share = math.ceil(spec.n_layers / pp) / spec.n_layers
        # per kind of layer: (count x bytes per token of one KV head or of an MLA latent, KV heads or 0, window)
        self.kinds = []
        self.state = 0.0  # per sequence at tp = 1 (split tp ways)
        for layer, n in spec.layer_kinds:
            if layer.attention == "mla":
                self.kinds.append((n * kv_bytes_per_token(spec, layer, kv_bits), 0, layer.held or layer.window))
            elif layer.attention != "linear":
                self.kinds.append((n * kv_bytes_per_token(spec, layer, kv_bits) / layer.n_kv_heads, layer.n_kv_heads,
                                   layer.held or layer.window))
            self.state += n * recurrent_state_bytes(spec, layer)

        self.act_token_fixed, self.act_token_split, self.act_sequence_split = _activation_coefficients(spec, fmt)
        self._weights: dict[int, float] = {}
        self._kv_terms: dict[int, tuple] = {}
        self.windows = tuple({w for *_, w in self.kinds if w})  # kinks of the total in the length

    def with_overhead(self, overhead_bytes: float) -> "Footprint":
        """The same footprint with another runtime overhead (a device class's)."""
        import copy

        out = copy.copy(self)
        out.overhead = overhead_bytes
        return out

    def weights(self, tp=1):
        if isinstance(tp, int):  # one layout, asked for again and again: cached
            if tp not in self._weights:
                self._weights[tp] = float(_device_weights(self.split, self.spec, tp, self.pp, self.ep))
            return self._weights[tp]
        return _device_weights(self.split, self.spec, tp, self.pp, self.ep)

    def replicas(self, tp: int = 1) -> int:
        """Data-parallel replicas of the dense part under expert parallel (ep / tp), each with its own sequences;
        1 otherwise."""
        return self.ep // tp if self.ep > 1 else 1

    def per_device(self, batch, tp: int = 1):
        """Sequences on the heaviest device: the batch, or its busiest replica's share under expert parallel."""
        dp = self.replicas(tp)
        if dp == 1:
            return batch
        return -(-batch // dp) if isinstance(batch, int) else np.ceil(np.asarray(batch) / dp)

    def used(self, batch, prompt, length, tp: int = 1):
        """Bytes on the heaviest device: weights, runtime overhead, and each of its sequences' KV cache
        `length` deep and the prefill working set of its whole prompt (floats or arrays)."""
        return self.weights(tp) + self.overhead + self.per_device(batch, tp) * (
            self.kv(length, tp) + self.activations(prompt, tp))

    def kv(self, length, tp=1):
        """KV cache and state bytes of one sequence `length` tokens deep on the heaviest device."""
        if isinstance(tp, int) and isinstance(length, (int, float)):  # plain numbers: no numpy call per term
            per_window, state = self._kv_by_window(tp)
            for w, c in per_window:
                state += c * (length if w is None or length < w else w)
            return state
        else:
            kept = sum(b * (np.ceil(heads / tp) if heads else 1) * (length if w is None else np.minimum(length, w))
                       for b, heads, w in self.kinds)
        return self.layer_share * (kept + self.state / tp)

    def _kv_by_window(self, tp: int) -> tuple[tuple, float]:
        """kv() on plain numbers, for one layout: ((window, bytes per token kept under it), ...) and the state,
        with the layer share applied."""
        hit = self._kv_terms.get(tp)
        if hit is None:
            per: dict = {}
            for b, heads, w in self.kinds:
                per[w] = per.get(w, 0.0) + self.layer_share * b * (-(-heads // tp) if heads else 1)
            hit = self._kv_terms[tp] = (tuple(per.items()), self.layer_share * self.state / tp)
        return hit

    def activations(self, prompt, tp=1):
        return prompt * (self.act_token_fixed + self.act_token_split / tp) + self.act_sequence_split / tp

    def _total(self, batch: int, prompt: int, length: float, tp: int) -> float:
        """total() on plain numbers."""
        return self.weights(tp) + self.overhead + batch * (self.kv(length, tp) + self.activations(min(prompt, length), tp))

    def total(self, batch, prompt, length, tp=1):
        """Bytes on the heaviest device with `batch` sequences on it (the working set of min(prompt, length)
        tokens each)."""
        return (self.weights(tp) + self.overhead
                + batch * (self.kv(length, tp) + self.activations(np.minimum(prompt, length), tp)))

    def max_batch(self, prompt, length, capacity, tp=1, upper: int = 1 << 24):
        """Largest batch that fits: its heaviest device's share times the replicas (expert parallel)."""
        return self._max_on_device(prompt, length, capacity, tp, upper) * self.replicas(tp if isinstance(tp, int)
                                                                                         else 1)

    def _max_on_device(self, prompt, length, capacity, tp=1, upper: int = 1 << 24):
        """Largest number of sequences on one device whose total fits (the total is affine in it): solved, then
        checked at +-1."""
        room = capacity - self.weights(tp) - self.overhead
        scalar = isinstance(tp, int) and all(isinstance(x, (int, float)) for x in (prompt, length, capacity))
        each = self.kv(length, tp) + self.activations(min(prompt, length) if scalar else np.minimum(prompt, length), tp)
        if scalar:
            b = min(max(math.floor(room / each), 0), upper)
            if b > 0 and self._total(b, prompt, length, tp) > capacity:
                b -= 1
            if b < upper and self._total(b + 1, prompt, length, tp) <= capacity:
                b += 1
            return b
        b = np.clip(np.floor(room / each), 0, upper)
        b = np.where((b > 0) & (self.total(b, prompt, length, tp) > capacity), b - 1, b)
        b = np.where((b < upper) & (self.total(b + 1, prompt, length, tp) <= capacity), b + 1, b)
        return b

    def max_length(self, batch: int, prompt: int, capacity: float, tp: int = 1, upper: int = 1 << 30) -> int:
        """Longest length that fits: the total is piecewise linear and non-decreasing in the length, with kinks
        at the prompt and at each window; solved on the segment where it crosses the capacity."""
        batch = self.per_device(batch, tp)

        def total(n):
            return self._total(batch, prompt, n, tp)

        lo, at_lo = 1, total(1)
        if at_lo > capacity:
            return 0
        kinks = sorted({upper} | {k for k in (prompt, *self.windows) if 1 < k < upper})
        for hi in kinks:
            if hi <= lo:
                continue
            at_hi = total(hi)
            if at_hi <= capacity:
                lo, at_lo = hi, at_hi
                continue
            n = lo + int((capacity - at_lo) // ((at_hi - at_lo) / (hi - lo)))
            n = max(lo, min(n, hi - 1))
            while n > lo and total(n) > capacity:  # rounding: at most a step or two either way
                n -= 1
            while n + 1 < hi and total(n + 1) <= capacity:
                n += 1
            return n
        return lo

    def min_devices(self, batch, prompt, length, capacity, tp: int = 1):
        """Smallest tensor-parallel group (of the counts _device_counts walks) whose heaviest device fits,
        evaluated for every count at once; 0 where none up to MAX_DEVICES does. Under expert parallel: the
        smallest expert-parallel group (a divisor of the experts, each replica one device) that fits."""
        if self.ep > 1:
            import copy

            experts = self.spec.moe.n_experts
            for ep in (n for n in range(tp, experts + 1, tp) if not experts % n):
                other = copy.copy(self)
                other.ep, other._weights = ep, {}
                if other._total(other.per_device(batch, tp), prompt, length, tp) <= capacity:
                    return np.array([ep])
            return np.array([0])
        if all(isinstance(x, (int, float)) for x in (batch, prompt, length)) and \
                self._total(batch, prompt, length, 1) <= capacity:
            return np.array([1])  # the common case, without evaluating every count
        counts = DEVICE_COUNTS[:, None]
        batch, prompt, length = (np.asarray(x, dtype=float).reshape(1, -1) for x in (batch, prompt, length))
        fits = self.total(batch, prompt, length, counts) <= capacity
        return np.where(fits.any(0), DEVICE_COUNTS[fits.argmax(0)], 0)


def memory_budget(spec: ModelSpec, fmt: WeightFormat, kv_bits: float, batch: int, prompt: int, length: int,
                  tp: int, capacity_gb: float, overhead_gb: float, pp: int = 1,
                  footprint: Footprint | None = None) -> MemoryResult:
    capacity = capacity_gb * GIB  # sold in binary units: a "24 GB" card holds 24 GiB
    fp = footprint or Footprint(spec, fmt, kv_bits, overhead_gb * GB, pp)
    weights = float(fp.weights(tp))
    on_device = fp.per_device(batch, tp)  # sequences on the heaviest device (a replica's, under expert parallel)
    kv = on_device * float(fp.kv(length, tp))
    acts = on_device * float(fp.activations(prompt, tp))
    used = weights + kv + acts + overhead_gb * GB  # the whole prompt's prefill, whatever the length
    min_devices = int(fp.min_devices(batch, prompt, length, capacity, tp)[0]) or None
    per_token = float(fp.kv(1, tp) - fp.kv(0, tp))
    return make(
        MemoryResult, weights_gb=weights / GB, kv_cache_gb=kv / GB, activations_gb=acts / GB, runtime_overhead_gb=overhead_gb,
        total_gb=used / GB, capacity_gb=capacity_gb, fits=used <= capacity, min_devices=min_devices,
        max_batch=int(fp.max_batch(prompt, length, capacity, tp)), max_context=fp.max_length(batch, prompt, capacity, tp),
        model_max_context=spec.max_position, kv_bytes_per_token=per_token, per_device=tp * pp * fp.ep > 1,
    )


def _device_counts():
    n = 1
    while n <= MAX_DEVICES:
        yield n
        n += 1 if n < 16 else 8


DEVICE_COUNTS = np.array(list(_device_counts()), dtype=float)

__all__ = ["Footprint", "MemoryResult", "memory_budget", "weight_bytes", "kv_cache_bytes", "activation_bytes"]
