"""One forward step's costs in closed form: compiled once per model x format x parallel layout, then evaluated on
numpy arrays of workloads. Where are a step's bytes and FLOPs computed? Here.

A step processes T new tokens for each of B sequences whose KV caches already hold D tokens: a decode step is
T = 1, a prefill T = the prompt. Counting rules (per device):
  - a matmul over N = B*T tokens with P weights does 2*N*P FLOPs and reads its P weights once per step, whatever
    N (weights are shared by the batch: that is why batching helps decode);
  - attention reads each sequence's own cached K/V (not shared: that is why long contexts hurt batching) and
    writes the new tokens' K/V; its FLOPs are 2*(d_qk + d_v) per head per attended key;
  - routed experts: only the experts some token of the step routes to are read. With uniform routing a layer
    of E experts, k per token, touched by N tokens reads E*(1 - (1 - k/E)^N) experts on average;
  - the embedding lookup reads one row per token, not the table; lm_head runs on the last position only;
  - tensor parallelism over tp devices splits matmuls and attention heads tp ways (KV heads are replicated when
    there are fewer than tp; an MLA latent is replicated on every device) and adds two all-reduces per layer;
  - a layer split over pp devices (pipeline) gives each device 1/pp of the layers: a token's step passes the
    devices in turn, and the activations of its N tokens cross the link at each of the pp - 1 boundaries;
  - expert parallelism over ep devices (a multiple of tp) puts E/ep whole experts on each device; everything
    else runs tp-way in dp = ep/tp data-parallel replicas, the busiest holding ceil(B/dp) of the sequences (the
    attention-DP layout of SGLang and of vLLM's --enable-expert-parallel with data-parallel attention), and two
    all-to-alls per MoE layer carry each token to its k experts' devices and back.

Every quantity of every operator group is then a linear combination of a few basis functions of (B, T, D):
    1, N, B, B * keys_w(D, T) and B * min(D, w) for each attention window w (None: the whole context),
    and the expected distinct experts E*(1 - (1 - k/E)^N),
so compiling is filling a coefficient table and evaluating is one matrix product. Decode keys at a depth d are
min(d + 1, w) (the same as the prefill formula at whole depths); between the kinks at w - 1 and w every decode
quantity is affine in d, which is what lets timing.py average a run of decode steps exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .architecture import LayerSpec, ModelSpec, WeightGroup, global_weights, layer_weights
from .formats import WeightFormat

QUANTITIES = ("flops", "weight_bytes", "kv_bytes", "act_bytes", "comm_bytes", "quantized_weights",
              "floor_weight_bytes")
FLOPS, WEIGHT, KV, ACT, COMM, QUANT, FLOOR = range(len(QUANTITIES))
KINDS = ("matmul", "attention", "memory", "allreduce", "handoff", "alltoall")
LINK_KINDS = ("allreduce", "handoff", "alltoall")  # groups that move bytes between devices


def group_bits(group: WeightGroup, spec: ModelSpec, fmt: WeightFormat) -> float:
    """Bits per parameter a format stores this tensor group in (formats.py states the conventions)."""
    if group.kind == "norm":
        return fmt.norm_bits
    if group.kind == "embedding":
        return fmt.embedding_bits
    if group.kind == "lm_head":
        return fmt.lm_head_bits
    if group.kind == "linear" and fmt.moe_other_bits is not None and spec.moe is not None:
        return fmt.moe_other_bits
    return fmt.bits


def expected_experts(n_experts: int, top_k: int, tokens, skew: float = 0.0):
    """Distinct experts touched when `tokens` tokens each pick top_k of n_experts: uniformly (skew 0), or with
    expert i's popularity falling as i^-skew (Zipf), each token including expert i with probability
    q_i = min(1, k p_i) rescaled to sum to k: then sum_i 1 - (1 - q_i)^tokens."""
    if not skew:
        return n_experts * (1.0 - (1.0 - top_k / n_experts) ** tokens)
    q = _inclusion(n_experts, top_k, skew)
    t = np.asarray(tokens, dtype=float)
    return (1.0 - (1.0 - q[:, None]) ** t.reshape(1, -1)).sum(0).reshape(t.shape)


def _inclusion(n_experts: int, top_k: int, skew: float) -> np.ndarray:
    """Per-token inclusion probabilities of Zipf-popular experts, each at most 1, summing to top_k."""
    p = np.arange(1, n_experts + 1, dtype=float) ** -skew
    q = top_k * p / p.sum()
    for _ in range(n_experts):  # cap at 1 and hand the excess to the rest in proportion
        over = q > 1
        if not over.any():
            break
        q[over] = 1.0
        rest = ~over
        q[rest] *= (top_k - over.sum()) / q[rest].sum()
    return q


def attended_keys(context, new_tokens, window: int | None):
    """Sum over the new tokens of the keys each attends to (causal, capped by a sliding window): token i of T
    attends to min(D + i, w) keys. Works on floats and on numpy arrays."""
    if window is None:
        return new_tokens * context + new_tokens * (new_tokens + 1) / 2
    full = np.clip(window - context, 0, new_tokens)  # tokens that still see less than a window
    return full * context + full * (full + 1) / 2 + (new_tokens - full) * window


def kv_bytes_per_token(spec: ModelSpec, layer: LayerSpec, kv_bits: float, tp: int = 1) -> float:
    """Cached bytes per token for one layer on one device."""
    if layer.attention == "linear":
        return 0.0
    if layer.attention == "mla":  # replicated across TP, with the sparse-attention indexer's keys where present
        return (spec.mla.kv_lora_rank + spec.mla.qk_rope_head_dim) * kv_bits / 8 + index_key_bytes(spec)
    heads = math.ceil(layer.n_kv_heads / tp)
    return heads * layer.head_dim * (1 if layer.k_eq_v else 2) * kv_bits / 8


def index_key_bytes(spec: ModelSpec) -> float:
    """Bytes per token of DeepSeek sparse attention's indexer keys: index_head_dim values in FP8 and one fp32
    scale (DeepSeek-V3.2's release caches them so)."""
    m = spec.mla
    return m.index_head_dim + 4 if m is not None and m.index_topk else 0.0


def recurrent_state_bytes(spec: ModelSpec, layer: LayerSpec, tp: int = 1) -> float:
    """Fixed-size per-sequence state of a linear-attention layer (replaces its KV cache)."""
    if layer.attention != "linear" and not layer.mamba:
        return 0.0
    if spec.mamba is not None:  # the SSM state (fp32) and the convolution's last kernel - 1 inputs
        mb = spec.mamba
        return (mb.n_heads * mb.head_dim * mb.d_state * mb.state_bytes + mb.conv_dim * (mb.conv_kernel - 1) * 2) / tp
    la = spec.linear_attention
    channels = 2 * la.n_key_heads * la.key_head_dim + la.n_value_heads * la.value_head_dim
    conv = channels * max(la.conv_kernel - 1, 0) * 2  # the convolution's last inputs (lightning attention: none)
    return (la.n_value_heads * la.key_head_dim * la.value_head_dim * la.state_bytes + conv) / tp


def matrix_layout(name: str, shapes, bits: float, tp: int) -> tuple[tuple[float, float], ...]:
    """(bytes, out/in) of each weight matrix on one device. Tensor parallelism (Megatron's layout) splits the
    output projections (attention out, the MLP's down: the last matrix) by their inputs, the others by their
    outputs."""
    out = []
    for i, (rows, cols) in enumerate(shapes):
        row_parallel = name == "attn_out" or (name in ("mlp", "moe_experts", "moe_shared") and i == len(shapes) - 1)
        rows, cols = (rows, cols / tp) if row_parallel else (rows / tp, cols)
        out.append((rows * cols * bits / 8, rows / cols))
    return tuple(out)


def compute_dtype(bits: float, fmt: WeightFormat) -> str:
    """The units a tensor group is multiplied on: the format's own path for the bits it quantises and for any
    other quantised group (a Q4_K_M file's Q6_K lm_head runs through the same integer kernels as its Q4_K
    matrices), the float path for groups kept at 16 bits or more. Keying this on the group's bits, not on whether
    they equal the format's, means fewer bits never lands a tensor on a slower path."""
    if bits == fmt.bits or bits < 16:
        return fmt.compute
    return float_dtype(fmt)


def float_dtype(fmt: WeightFormat) -> str:
    """The float units of the format's activations: attention, scans and groups kept at 16 bits or more run on
    them. A bf16 model's attention runs in bf16, not fp16: on CPUs the two differ a thousandfold (PyTorch's fp16
    CPU kernels are scalar), on GPUs they are the same units."""
    if fmt.activation_bytes == 4:
        return "fp32"
    return "bf16" if fmt.compute == "bf16" else "fp16"


def unpacked(bits: float, compute: str) -> bool:
    """Integer weights in blocks with scales (ggml, int4/int8, AWQ, GPTQ, EXL2) that a kernel unpacks in software;
    fp8 and fp4 weights go to the tensor cores as they are."""
    return bits < 16 and compute not in ("fp8", "fp4")


@dataclass(frozen=True)
class Group:
    """An operator of the step, identical layers folded: `count` instances, coefficients summed over them."""

    name: str  # the operator table's row
    kind: str  # one of KINDS
    compute: str  # dtype whose peak applies
    count: int
    matrices: tuple[tuple[float, float], ...] = ()  # matmuls: (bytes, out/in) of each matrix of one instance
    latency_steps: int = 0  # all-reduces: ring steps per instance, each paying the link's latency
    curve_tokens: str = ""  # matmuls: what a measured matmul curve is indexed by ("tokens", "sequences", "experts")


class _Table:
    """Coefficients being filled: per group, per quantity, per basis function; one table for T = 1 and one for
    T > 1 (MLA attends in its latent space at decode, linear attention chunks its prefill)."""

    def __init__(self, basis: list[str], top_k: int = 0):
        self.basis = {name: i for i, name in enumerate(basis)}
        self.top_k = top_k
        self.groups: list[Group] = []
        self.single: list[np.ndarray] = []
        self.multi: list[np.ndarray] = []

    def add(self, group: Group, terms: dict, multi_terms: dict | None = None, routed: bool = False) -> None:
        """terms: {quantity index: {basis name: coefficient per instance}}; counts multiply them here. routed:
        the group's tokens are all the step's tokens (routed experts and their all-to-all under expert parallel:
        the basis "routed"), where the others' are those of the busiest data-parallel replica."""
        for table, t in ((self.single, terms), (self.multi, multi_terms or terms)):
            c = np.zeros((len(QUANTITIES), len(self.basis)))
            for q, by_basis in t.items():
                for name, value in by_basis.items():
                    c[q, self.basis["routed" if routed and name == "tokens" and "routed" in self.basis
                                    else name]] += value * group.count
            # The ceiling's weights: however the batch routes, each layer reads at least the top_k experts every
            # token picks (all tokens alike); the expected count is the estimate's (uniform routing)
            c[FLOOR] = c[WEIGHT]
            if "experts" in self.basis:
                e = self.basis["experts"]
                c[FLOOR, self.basis["one"]] += c[WEIGHT, e] * self.top_k
                c[FLOOR, e] = 0.0
            table.append(c)
        self.groups.append(group)


def _matmul(t: _Table, name: str, params: float, bits: float, compute: str, act: int, width_in: float,
            width_out: float, shapes, tp: int, count: int, per: str = "tokens") -> None:
    """A dense matmul over `per` (every token, or one position per sequence for lm_head)."""
    t.add(Group(name, "matmul", compute, count, matrix_layout(name, shapes, bits, tp), curve_tokens=per),
          {FLOPS: {per: 2 * params / tp}, WEIGHT: {"one": params * bits / 8 / tp},
           ACT: {per: (width_in + width_out / tp) * act},
           QUANT: {"one": params / tp if unpacked(bits, compute) else 0.0}})


def _attention(t: _Table, spec: ModelSpec, layer: LayerSpec, kv_bits: float, act: int, tp: int, count: int,
               dtype: str) -> None:
    if layer.attention == "linear" and spec.mamba is not None:
        _mamba_mixer(t, spec, layer, act, tp, count, "attention", dtype)
        return
    if layer.attention == "linear":
        la = spec.linear_attention
        v_heads = la.n_value_heads / tp
        # Gated delta rule: decay, k^T S, rank-1 update and q S per token, each ~ dk*dv per value head (lightning
        # attention: decay, k^T v and q S); prefill runs in blocks with an intra-block attention on top.
        per_token = (8 if la.kind == "gated_deltanet" else 6) * v_heads * la.key_head_dim * la.value_head_dim
        state = recurrent_state_bytes(spec, layer, tp)
        terms = {FLOPS: {"tokens": per_token}, KV: {"sequences": 2 * state},
                 ACT: {"tokens": 2 * v_heads * la.value_head_dim * act}}
        multi = {**terms, FLOPS: {"tokens": per_token + 4 * v_heads * la.chunk * la.key_head_dim}}
        t.add(Group("attention", "attention", dtype, count), terms, multi)
        return
    heads = layer.n_heads / tp
    w = layer.reads or layer.window
    per_token = kv_bytes_per_token(spec, layer, kv_bits, tp) - (index_key_bytes(spec) if layer.attention == "mla"
                                                                  else 0.0)

    def terms(d_qk: float, d_v: float) -> dict:
        # read the cache (at most a window of it), write the new tokens' K/V
        return {FLOPS: {f"keys:{w}": heads * 2 * (d_qk + d_v)},
                KV: {f"cached:{w}": per_token, "tokens": per_token},
                ACT: {"tokens": heads * (d_qk + d_v) * act}}

    if layer.attention == "mla":
        m = spec.mla
        # decode with the up-projections absorbed: attention runs in the latent space (512 + 64 for DeepSeek-V3)
        single = terms(m.kv_lora_rank + m.qk_rope_head_dim, m.kv_lora_rank)
        multi = terms(m.qk_nope_head_dim + m.qk_rope_head_dim, m.v_head_dim)
        t.add(Group("attention", "attention", dtype, count), single, multi)
        if m.index_topk:  # the indexer scores every cached token (its own keys), the attention reads the top-k
            ib = index_key_bytes(spec)
            t.add(Group("indexer", "attention", dtype, count),
                  {FLOPS: {"keys:None": 2 * m.index_n_heads * m.index_head_dim},
                   KV: {"cached:None": ib, "tokens": ib}, ACT: {"tokens": m.index_n_heads * m.index_head_dim * act}})
    else:
        t.add(Group("attention", "attention", dtype, count), terms(layer.head_dim, layer.head_dim))


def _mamba_mixer(t: _Table, spec: ModelSpec, layer: LayerSpec, act: int, tp: int, count: int, name: str,
                 dtype: str) -> None:
    """A Mamba-2 mixer's scan: per token and head the state update (decay, B x^T) and its read-out (C^T state),
    ~6 head_dim x d_state FLOPs, and the causal convolution; its fixed state is read and written each step."""
    mb = spec.mamba
    per_token = 6 * mb.n_heads / tp * mb.head_dim * mb.d_state + 2 * mb.conv_dim / tp * mb.conv_kernel
    state = recurrent_state_bytes(spec, layer, tp)
    t.add(Group(name, "attention", dtype, count),
          {FLOPS: {"tokens": per_token}, KV: {"sequences": 2 * state}, ACT: {"tokens": 2 * mb.d_inner / tp * act}})


def _layer(t: _Table, spec: ModelSpec, layer: LayerSpec, fmt: WeightFormat, kv_bits: float, tp: int,
           count: int, ep: int = 1) -> None:
    act = fmt.activation_bytes
    h = spec.hidden_size
    for g in layer_weights(spec, layer):
        bits = group_bits(g, spec, fmt)
        dtype = compute_dtype(bits, fmt)
        if g.op == "norms":
            t.add(Group("norms", "memory", "fp32", count),
                  {FLOPS: {"tokens": 4 * spec.norms_per_layer * h}, WEIGHT: {"one": g.params * bits / 8},
                   ACT: {"tokens": spec.norms_per_layer * 2 * h * act}})  # read and write the hidden state
        elif g.op == "moe_experts":
            _experts(t, spec, g, bits, dtype, act, tp, ep, count)
        else:
            _matmul(t, g.op, g.params, bits, dtype, act, h, g.params / h, g.shapes, tp, count)
        if g.op == "attn_qkv":
            _attention(t, spec, layer, kv_bits, act, tp, count, float_dtype(fmt))
        if g.op == "mamba_in":
            _mamba_mixer(t, spec, layer, act, tp, count, "mamba_scan", float_dtype(fmt))
    if tp > 1:  # after attention and after the MLP; a ring all-reduce sends 2(N-1)/N of the message
        message = h * act
        # under expert parallel with replicas, a MoE layer's experts return their outputs by the all-to-all
        combined = ep > tp and any(g.op == "moe_experts" for g in layer_weights(spec, layer))
        t.add(Group("allreduce", "allreduce", "fp16", (1 if combined else 2) * count, latency_steps=2 * (tp - 1)),
              {FLOPS: {"tokens": h * (tp - 1) / tp}, ACT: {"tokens": 2 * message},
               COMM: {"tokens": 2 * (tp - 1) / tp * message}})


def _experts(t: _Table, spec: ModelSpec, g: WeightGroup, bits: float, dtype: str, act: int, tp: int, ep: int,
             count: int) -> None:
    """Routed experts. Tensor parallel slices every expert tp ways; expert parallel (ep > 1) puts E / ep whole
    experts on each device, which computes the tokens routed to them from every replica: on average 1 / ep of
    the batch's k routed tokens, and 1 / ep of the distinct experts the batch touches. With data-parallel
    replicas (ep > tp) each token's hidden state is sent to the devices of its k experts and back (two
    all-to-alls per layer, replacing the layer's second all-reduce); (ep - 1) / ep of its experts are
    elsewhere."""
    moe, h = spec.moe, spec.hidden_size
    split = ep if ep > 1 else tp
    t.add(Group("moe_experts", "matmul", dtype, count, matrix_layout(g.op, g.shapes, bits, 1 if ep > 1 else tp),
                curve_tokens="experts"),
          {FLOPS: {"tokens": 2 * moe.top_k * g.per_expert / split},
           WEIGHT: {"experts": g.per_expert * bits / 8 / split},
           ACT: {"tokens": moe.top_k * 2 * h * act / (ep if ep > 1 else 1)},
           QUANT: {"experts": g.per_expert / split if unpacked(bits, dtype) else 0.0}}, routed=True)
    if ep > tp:  # replicas hold different tokens (ep = tp: every device has them all, the all-reduce combines)
        message = h * act  # one token's hidden state, per device: 1 / ep of the step's tokens
        t.add(Group("moe_alltoall", "alltoall", "fp16", 2 * count, latency_steps=1),
              {ACT: {"tokens": 2 * moe.top_k * message / ep},
               COMM: {"tokens": moe.top_k * (ep - 1) / ep * message / ep}}, routed=True)


@dataclass(frozen=True)
class StepValues:
    """A step's quantities on arrays of workloads: `array` is (groups, quantities, workloads) in QUANTITIES order;
    the fields are views of it, (groups, workloads) each."""

    array: np.ndarray
    basis: np.ndarray  # (basis, workloads): what they were evaluated from

    flops = property(lambda self: self.array[:, FLOPS])
    weight_bytes = property(lambda self: self.array[:, WEIGHT])
    kv_bytes = property(lambda self: self.array[:, KV])
    act_bytes = property(lambda self: self.array[:, ACT])
    comm_bytes = property(lambda self: self.array[:, COMM])
    quantized_weights = property(lambda self: self.array[:, QUANT])
    floor_weight_bytes = property(lambda self: self.array[:, FLOOR])  # the ceiling's: the fewest experts

    @property
    def bytes(self) -> np.ndarray:
        return self.array[:, WEIGHT] + self.array[:, KV] + self.array[:, ACT]


class CompiledStep:
    """The step of `spec` in format `fmt`, KV cache at `kv_bits`, tp-way tensor parallel within each of pp
    pipeline stages (with ep > 1: experts over ep devices, the rest in ep/tp data-parallel replicas of tp);
    evaluate() gives every group's quantities for arrays of (B, T, D)."""

    def __init__(self, spec: ModelSpec, fmt: WeightFormat, kv_bits: float, tp: int = 1, pp: int = 1,
                 routing_skew: float = 0.0, ep: int = 1):
        self.spec, self.fmt, self.kv_bits, self.tp, self.pp, self.ep = spec, fmt, kv_bits, tp, pp, ep
        self.routing_skew = routing_skew  # the estimate's routing (0: uniform); the ceiling's is the fewest experts
        reads = {layer.reads or layer.window for layer, _ in spec.layer_kinds if layer.attention != "linear"}
        if spec.mla is not None and spec.mla.index_topk:
            reads.add(None)  # the sparse-attention indexer reads every cached token
        self.windows = sorted(reads, key=lambda w: -1 if w is None else w)
        basis = ["one", "tokens", "sequences"] + [f"{kind}:{w}" for w in self.windows for kind in ("keys", "cached")]
        if spec.moe is not None:
            basis.append("experts")
        # expert parallel with replicas: the dense part's sequences are the busiest replica's, ceil(B / dp); the
        # routed experts see every token of the step
        self.replicas = ep // tp if ep > tp else 1
        if self.replicas > 1:
            basis.append("routed")
        self.basis_names = tuple(basis)
        t = _Table(basis, spec.moe.top_k if spec.moe is not None else 0)
        self._globals(t)
        self.groups = tuple(t.groups)
        self.single = np.stack(t.single)  # (groups, quantities, basis)
        self.multi = np.stack(t.multi)
        self.differs = not np.array_equal(self.single, self.multi)
        self.rows = tuple(dict.fromkeys(g.name for g in self.groups))  # the operator table, in step order
        self.row_matrix = np.array([[g.name == r for g in self.groups] for r in self.rows], dtype=float)
        self.kind = np.array([KINDS.index(g.kind) for g in self.groups])
        self.latency_steps = np.array([g.latency_steps * g.count for g in self.groups], dtype=float)
        self.instances = np.array([g.count for g in self.groups], dtype=float)
        # decode quantities are affine in the depth between these kinks (module docstring)
        self.decode_kinks = tuple(sorted({k for w in self.windows if w is not None for k in (w - 1, w)}))

    def subset(self, idx) -> "CompiledStep":
        """The same step restricted to the groups at `idx` (a step's quantities are sums over its groups)."""
        import copy

        out = copy.copy(self)
        idx = np.asarray(idx, dtype=int)
        out.groups = tuple(self.groups[i] for i in idx)
        out.single, out.multi = self.single[idx], self.multi[idx]
        out.differs = not np.array_equal(out.single, out.multi)
        out.row_matrix = self.row_matrix[:, idx]
        out.kind, out.latency_steps, out.instances = self.kind[idx], self.latency_steps[idx], self.instances[idx]
        return out

    def depth_groups(self) -> np.ndarray:
        """Which groups depend on the KV depth (any coefficient on a keys or cached basis function)."""
        cols = [i for i, name in enumerate(self.basis_names) if name.startswith(("keys:", "cached:"))]
        return (self.single[:, :, cols] != 0).any((1, 2)) | (self.multi[:, :, cols] != 0).any((1, 2))

    def _globals(self, t: _Table) -> None:
        spec, fmt, tp = self.spec, self.fmt, self.tp
        act = fmt.activation_bytes
        h = spec.hidden_size
        glob = {g.op: g for g in global_weights(spec)}
        emb_dim = spec.embed_proj_dim or h
        t.add(Group("embedding", "memory", "fp32", 1),
              {WEIGHT: {"tokens": (emb_dim + (h if spec.learned_positions else 0)) * fmt.embedding_bits / 8},
               ACT: {"tokens": h * act}})
        if "embed_proj" in glob:
            _matmul(t, "embed_proj", glob["embed_proj"].params, fmt.bits, fmt.compute, act, h, h,
                    glob["embed_proj"].shapes, tp, 1)
        for layer, count in spec.layer_kinds:
            _layer(t, spec, layer, fmt, self.kv_bits, tp, count, self.ep)
        t.add(Group("final_norm", "memory", "fp32", 1),
              {FLOPS: {"tokens": 4 * h}, WEIGHT: {"one": glob["final_norm"].params * fmt.norm_bits / 8},
               ACT: {"tokens": 2 * h * act}})
        head = glob.get("lm_head", glob["embedding"])
        head_params = head.params - (spec.learned_positions * h if "lm_head" not in glob else 0)
        head_bits = fmt.lm_head_bits if "lm_head" in glob else fmt.embedding_bits
        # Only the last position of each sequence needs logits (a prefill samples one token per sequence);
        # they are written in fp32.
        _matmul(t, "lm_head", head_params, head_bits, compute_dtype(head_bits, fmt), act, h, 0,
                ((spec.vocab_size, emb_dim),), tp, 1, per="sequences")
        t.single[-1][ACT, t.basis["sequences"]] += spec.vocab_size * 4 / tp
        t.multi[-1][ACT, t.basis["sequences"]] += spec.vocab_size * 4 / tp
        if self.pp > 1:  # the activations of the step's tokens cross each stage boundary
            t.add(Group("pp_handoff", "handoff", "fp16", self.pp - 1, latency_steps=1),
                  {COMM: {"tokens": h * act}})

    def basis(self, batch, new_tokens, depth, decode: bool = False) -> np.ndarray:
        """The basis functions at (B, T, D), arrays broadcast together and flattened: (basis, workloads)."""
        b, t, d = (np.asarray(v, dtype=float).reshape(-1) for v in (batch, new_tokens, depth))
        n = max(b.size, t.size, d.size)
        if {b.size, t.size, d.size} - {1, n}:  # not flat arrays of one length (or single values): broadcast
            b, t, d = (x.reshape(-1) for x in np.broadcast_arrays(*(np.asarray(v, dtype=float)
                                                                     for v in (batch, new_tokens, depth))))
            n = b.size
        out = np.empty((len(self.basis_names), n))
        out[0] = 1.0
        if self.replicas > 1:
            out[-1] = b * t  # every token of the step, routed to the experts
            b = np.ceil(b / self.replicas)  # the busiest replica's sequences
        out[1] = b * t
        out[2] = b
        i = 3
        for w in self.windows:
            if decode:  # T = 1 at a continuous depth: affine between kinks
                keys = d + 1 if w is None else np.minimum(d + 1, w)
            else:
                keys = attended_keys(d, t, w)
            out[i] = b * keys
            out[i + 1] = b * (d if w is None else np.minimum(d, w))
            i += 2
        if self.spec.moe is not None:
            routed = out[-1] if self.replicas > 1 else out[1]
            out[i] = expected_experts(self.spec.moe.n_experts, self.spec.moe.top_k, routed, self.routing_skew)
        return out

    def evaluate(self, batch, new_tokens, depth, decode: bool = False) -> StepValues:
        """Every group's quantities at the workloads: arrays of shape (groups, workloads)."""
        phi = self.basis(batch, new_tokens, depth, decode)
        g, q, k = self.single.shape
        values = (self.single.reshape(g * q, k) @ phi).reshape(g, q, -1)
        if self.differs and not decode:
            multi = (self.multi.reshape(g * q, k) @ phi).reshape(g, q, -1)
            values = np.where(phi[1] > phi[2], multi, values)  # N > B: more than one new token per sequence
        return StepValues(values, phi)

    def curve_tokens(self, values: StepValues) -> np.ndarray:
        """Per matmul group, the vectors multiplying each weight (what a measured matmul curve is indexed by)."""
        phi = values.basis
        out = np.zeros((len(self.groups), phi.shape[1]))
        for i, g in enumerate(self.groups):
            if g.curve_tokens == "tokens":
                out[i] = phi[1]
            elif g.curve_tokens == "sequences":
                out[i] = phi[2]
            elif g.curve_tokens == "experts":  # tokens per touched expert
                e = self.basis_names.index("experts")
                out[i] = phi[-1 if self.replicas > 1 else 1] * self.spec.moe.top_k / phi[e]
        return out
