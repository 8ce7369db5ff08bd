"""The operators of one forward step, with their FLOPs and the bytes they move, per device.

A step processes `new_tokens` tokens for each of `batch` sequences whose KV caches already hold `context`
tokens: a decode step is new_tokens = 1, a prefill is new_tokens = the prompt. Counting rules:
  - a matmul over T tokens with P weights does 2*T*P FLOPs and reads its P weights once per step, whatever T
    (weights are shared by the batch: that is why batching helps decode);
  - attention reads each sequence's own cached K/V (not shared: that is why long contexts hurt batching) and
    writes the new tokens' K/V; its FLOPs are 2*(d_qk + d_v) per head per attended key;
  - routed experts: only the experts some token of the step routes to are read. With uniform routing a layer
    of E experts, k per token, touched by T tokens reads E*(1 - (1 - k/E)^T) experts on average;
  - the embedding lookup reads one row per token, not the table; lm_head runs on the last position only;
  - tensor parallelism over N devices splits matmuls and attention heads N ways (KV heads are replicated when
    there are fewer than N; an MLA latent is replicated on every device) and adds two all-reduces per layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .architecture import LayerSpec, ModelSpec, WeightGroup, global_weights, layer_weights
from .formats import WeightFormat


@dataclass(frozen=True)
class Op:
    name: str
    kind: str  # "matmul", "attention", "memory" (norms, lookups), "allreduce"
    flops: float  # per instance, per device
    weight_bytes: float
    kv_bytes: float
    act_bytes: float
    compute: str  # dtype whose peak applies
    count: int = 1  # identical instances (e.g. the same op in 80 identical layers)
    comm_bytes: float = 0.0  # bytes each device sends over the device link (all-reduce)
    tokens: float = 0.0  # matmuls: vectors multiplying each weight (what a measured matmul curve is indexed by)
    # matmuls: (bytes, out/in) of each weight matrix on one device (kernel efficiency depends on size and shape);
    # the op's weight bytes split among them in proportion to their bytes
    matrices: tuple[tuple[float, float], ...] = ()
    # all-reduces: message latencies in series; a ring all-reduce over N devices takes 2(N-1) steps, each paying
    # the link's latency (reduce-scatter, then all-gather)
    latency_steps: int = 0
    # matmuls: integer weights stored in blocks that the kernel unpacks and scales before multiplying (_unpacked)
    quantized_weights: float = 0.0

    @property
    def bytes(self) -> float:
        return self.weight_bytes + self.kv_bytes + self.act_bytes


@dataclass(frozen=True)
class Step:
    batch: int
    new_tokens: int
    context: float  # tokens already cached per sequence (a float: decode averages over depths)
    tp: int = 1

    @property
    def tokens(self) -> int:
        return self.batch * self.new_tokens


def group_bits(group: WeightGroup, spec: ModelSpec, fmt: WeightFormat) -> float:
    """Bits per parameter a format stores this tensor group in (formats.py states the conventions)."""
    if group.kind == "norm":
        return fmt.norm_bits
    if group.kind == "embedding":
        return fmt.embedding_bits
    if group.kind == "lm_head":
        return fmt.lm_head_bits
    if group.kind == "linear" and fmt.experts_only_on_moe and spec.moe is not None:
        return 16.0
    return fmt.bits


def expected_experts(n_experts: int, top_k: int, tokens: float) -> float:
    """Distinct experts touched when `tokens` tokens each pick top_k of n_experts uniformly."""
    return n_experts * (1.0 - (1.0 - top_k / n_experts) ** tokens)


def attended_keys(context: float, new_tokens: int, window: int | None) -> float:
    """Sum over the new tokens of the keys each attends to (causal, capped by a sliding window)."""
    if window is None or context + new_tokens <= window:
        return new_tokens * context + new_tokens * (new_tokens + 1) / 2
    full = max(0.0, min(new_tokens, window - context))  # tokens that still see less than a window
    return full * context + full * (full + 1) / 2 + (new_tokens - full) * window


def kv_bytes_per_token(spec: ModelSpec, layer: LayerSpec, kv_bits: float, tp: int = 1) -> float:
    """Cached bytes per token for one layer on one device."""
    if layer.attention == "linear":
        return 0.0
    if layer.attention == "mla":
        return (spec.mla.kv_lora_rank + spec.mla.qk_rope_head_dim) * kv_bits / 8  # replicated across TP
    heads = math.ceil(layer.n_kv_heads / tp)
    return heads * layer.head_dim * (1 if layer.k_eq_v else 2) * kv_bits / 8


def recurrent_state_bytes(spec: ModelSpec, layer: LayerSpec, tp: int = 1) -> float:
    """Fixed-size per-sequence state of a linear-attention layer (replaces its KV cache)."""
    if layer.attention != "linear":
        return 0.0
    la = spec.linear_attention
    conv = (2 * la.n_key_heads * la.key_head_dim + la.n_value_heads * la.value_head_dim) * (la.conv_kernel - 1) * 2
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


def _compute_dtype(bits: float, fmt: WeightFormat) -> str:
    """The units a tensor group is multiplied on: the format's own path for the bits it quantises and for any
    other quantised group (a Q4_K_M file's Q6_K lm_head runs through the same integer kernels as its Q4_K
    matrices), the float path for groups kept at 16 bits or more. Keying this on the group's bits, not on whether
    they equal the format's, means fewer bits never lands a tensor on a slower path."""
    if bits == fmt.bits or bits < 16:
        return fmt.compute
    return "fp32" if fmt.activation_bytes == 4 else "fp16"


def _unpacked(bits: float, compute: str) -> bool:
    """Integer weights in blocks with scales (ggml, int4/int8, AWQ, GPTQ, EXL2) that a kernel unpacks in software;
    fp8 and fp4 weights go to the tensor cores as they are."""
    return bits < 16 and compute not in ("fp8", "fp4")


def _matmul(name: str, params: float, bits: float, step: Step, compute: str, act: int, width_in: float,
            width_out: float, shapes, tokens: float | None = None) -> Op:
    tokens = step.tokens if tokens is None else tokens
    weight = params * bits / 8 / step.tp
    return Op(name, "matmul", 2 * tokens * params / step.tp, weight, 0.0,
              tokens * (width_in + width_out / step.tp) * act, compute, tokens=tokens,
              matrices=matrix_layout(name, shapes, bits, step.tp),
              quantized_weights=params / step.tp if _unpacked(bits, compute) else 0.0)


def _attention(spec: ModelSpec, layer: LayerSpec, step: Step, kv_bits: float, act: int) -> Op:
    b, n, ctx, tp = step.batch, step.new_tokens, step.context, step.tp
    heads = layer.n_heads / tp
    if layer.attention == "linear":
        la = spec.linear_attention
        v_heads = la.n_value_heads / tp
        # Gated delta rule: decay, k^T S, rank-1 update and q S per token, each ~ dk*dv per value head;
        # prefill runs in chunks of 64 with an intra-chunk attention on top.
        per_token = 8 * v_heads * la.key_head_dim * la.value_head_dim + (4 * v_heads * 64 * la.key_head_dim
                                                                          if n > 1 else 0)
        state = recurrent_state_bytes(spec, layer, tp)
        return Op("attention", "attention", step.tokens * per_token, 0.0, 2 * b * state,
                  step.tokens * 2 * v_heads * la.value_head_dim * act, "fp32" if act == 4 else "fp16")
    keys = attended_keys(ctx, n, layer.window)
    if layer.attention == "mla":
        m = spec.mla
        if n == 1:  # decode with the up-projections absorbed: attention runs in the 512+64 latent space
            d_qk, d_v = m.kv_lora_rank + m.qk_rope_head_dim, m.kv_lora_rank
        else:
            d_qk, d_v = m.qk_nope_head_dim + m.qk_rope_head_dim, m.v_head_dim
    else:
        d_qk = d_v = layer.head_dim
    flops = b * heads * 2 * (d_qk + d_v) * keys
    cached = ctx if layer.window is None else min(ctx, layer.window)
    per_token = kv_bytes_per_token(spec, layer, kv_bits, tp)
    kv = b * (cached + n) * per_token  # read the cache, write the new tokens' K/V
    act_bytes = step.tokens * heads * (d_qk + d_v) * act
    return Op("attention", "attention", flops, 0.0, kv, act_bytes, "fp32" if act == 4 else "fp16")


def layer_ops(spec: ModelSpec, layer: LayerSpec, fmt: WeightFormat, kv_bits: float, step: Step) -> list[Op]:
    act = fmt.activation_bytes
    h = spec.hidden_size
    ops: list[Op] = []
    for g in layer_weights(spec, layer):
        bits = group_bits(g, spec, fmt)
        compute = _compute_dtype(bits, fmt)
        if g.op == "norms":
            reads = spec.norms_per_layer * 2 * step.tokens * h * act  # read and write the hidden state
            ops.append(Op("norms", "memory", 4 * spec.norms_per_layer * step.tokens * h, g.params * bits / 8,
                          0.0, reads, "fp32"))
        elif g.op == "moe_experts":
            moe = spec.moe
            touched = expected_experts(moe.n_experts, moe.top_k, step.tokens)
            ops.append(Op("moe_experts", "matmul", 2 * step.tokens * moe.top_k * g.per_expert / step.tp,
                          touched * g.per_expert * bits / 8 / step.tp, 0.0,
                          step.tokens * moe.top_k * 2 * h * act, compute,
                          tokens=step.tokens * moe.top_k / touched,
                          matrices=matrix_layout(g.op, g.shapes, bits, step.tp),
                          quantized_weights=touched * g.per_expert / step.tp if _unpacked(bits, compute) else 0.0))
        else:
            ops.append(_matmul(g.op, g.params, bits, step, compute, act, h, g.params / h, g.shapes))
        if g.op == "attn_qkv":
            ops.append(_attention(spec, layer, step, kv_bits, act))
    if step.tp > 1:  # after attention and after the MLP; a ring all-reduce sends 2(N-1)/N of the message
        message = step.tokens * h * act
        ops.append(Op("allreduce", "allreduce", step.tokens * h * (step.tp - 1) / step.tp, 0.0, 0.0, 2 * message,
                      "fp16", count=2, comm_bytes=2 * (step.tp - 1) / step.tp * message,
                      latency_steps=2 * (step.tp - 1)))
    return ops


def step_ops(spec: ModelSpec, fmt: WeightFormat, kv_bits: float, step: Step) -> list[Op]:
    """Every operator of one step, identical layers folded into one Op with a count."""
    act = fmt.activation_bytes
    h = spec.hidden_size
    ops: list[Op] = []
    glob = {g.op: g for g in global_weights(spec)}
    emb = glob["embedding"]
    emb_dim = spec.embed_proj_dim or h
    rows_bytes = step.tokens * (emb_dim + (h if spec.learned_positions else 0)) * fmt.embedding_bits / 8
    ops.append(Op("embedding", "memory", 0.0, rows_bytes, 0.0, step.tokens * h * act, "fp32"))
    if "embed_proj" in glob:
        ops.append(_matmul("embed_proj", glob["embed_proj"].params, fmt.bits, step, fmt.compute, act, h, h,
                           glob["embed_proj"].shapes))
    for layer, count in spec.layer_kinds:
        for op in layer_ops(spec, layer, fmt, kv_bits, step):
            ops.append(Op(**{**op.__dict__, "count": op.count * count}))
    ops.append(Op("final_norm", "memory", 4 * step.tokens * h, glob["final_norm"].params * fmt.norm_bits / 8, 0.0,
                  2 * step.tokens * h * act, "fp32"))
    head = glob.get("lm_head", emb)
    head_params = head.params - (spec.learned_positions * h if head is emb else 0)
    head_bits = fmt.lm_head_bits if "lm_head" in glob else fmt.embedding_bits
    head_compute = _compute_dtype(head_bits, fmt)
    # Only the last position of each sequence needs logits (a prefill samples one token per sequence).
    logits = _matmul("lm_head", head_params, head_bits, step, head_compute, act, h, 0, ((spec.vocab_size, emb_dim),),
                     tokens=step.batch)
    ops.append(Op(**{**logits.__dict__, "act_bytes": logits.act_bytes + step.batch * spec.vocab_size * 4 / step.tp}))
    return ops
