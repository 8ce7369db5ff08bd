"""Bytes and FLOPs of one step, worked out by hand for the tiny config in conftest.py.

Tiny model: hidden 64, 2 layers, 4 query heads and 2 KV heads of 16, MLP 128 (SwiGLU), vocab 100, untied.
Per layer: qkv 64*(64+64) = 8192 weights, out 4096, MLP 3*64*128 = 24576, norms 128. bf16 = 2 bytes each.
"""

import pytest

from llm_roofline import catalog
from llm_roofline.architecture import load_model
from llm_roofline.formats import load_format
from llm_roofline.ops import Step, attended_keys, expected_experts, step_ops


def _by_name(ops):
    out = {}
    for op in ops:
        row = out.setdefault(op.name, {"flops": 0.0, "weight": 0.0, "kv": 0.0, "act": 0.0, "count": 0})
        row["flops"] += op.count * op.flops
        row["weight"] += op.count * op.weight_bytes
        row["kv"] += op.count * op.kv_bytes
        row["act"] += op.count * op.act_bytes
        row["count"] += op.count
    return out


def test_decode_step_by_hand(tiny_config):
    spec = load_model(tiny_config)
    ops = _by_name(step_ops(spec, load_format("bf16"), 16, Step(batch=1, new_tokens=1, context=10)))
    assert ops["attn_qkv"]["flops"] == 2 * 2 * 8192  # 2 FLOPs per weight per token, 2 layers
    assert ops["attn_qkv"]["weight"] == 2 * 8192 * 2
    assert ops["attn_out"]["weight"] == 2 * 4096 * 2
    assert ops["mlp"]["flops"] == 2 * 2 * 24576
    # attention: the new token attends to 10 cached + itself = 11 keys; QK and PV are 2*16 FLOPs each per head
    assert ops["attention"]["flops"] == 2 * 4 * (2 * 16 + 2 * 16) * 11
    # KV per token per layer: 2 heads * 16 * (K and V) * 2 bytes = 128; read 10, write 1, in 2 layers
    assert ops["attention"]["kv"] == 2 * 11 * 128
    assert ops["embedding"]["weight"] == 64 * 2  # one row, not the 100-row table
    assert ops["lm_head"]["flops"] == 2 * 100 * 64 and ops["lm_head"]["weight"] == 100 * 64 * 2
    weights = sum(r["weight"] for r in ops.values())
    assert weights == 2 * (8192 + 4096 + 24576 + 128) * 2 + 64 * 2 + 100 * 64 * 2 + 64 * 2


def test_batch_shares_weights_not_kv(tiny_config):
    spec = load_model(tiny_config)
    one = _by_name(step_ops(spec, load_format("bf16"), 16, Step(1, 1, 10)))
    eight = _by_name(step_ops(spec, load_format("bf16"), 16, Step(8, 1, 10)))
    assert eight["mlp"]["weight"] == one["mlp"]["weight"]
    assert eight["mlp"]["flops"] == 8 * one["mlp"]["flops"]
    assert eight["attention"]["kv"] == 8 * one["attention"]["kv"]


def test_prefill_lm_head_last_position_only(tiny_config):
    spec = load_model(tiny_config)
    ops = _by_name(step_ops(spec, load_format("bf16"), 16, Step(batch=2, new_tokens=50, context=0)))
    assert ops["lm_head"]["flops"] == 2 * 2 * 100 * 64  # two sequences, one position each
    assert ops["mlp"]["flops"] == 2 * 100 * 2 * 24576  # 100 tokens, 2 layers
    # causal prefill from empty: token i attends to i keys, sum 1..50 = 1275, per sequence
    assert ops["attention"]["flops"] == 2 * 2 * 4 * 64 * 1275


def test_matrix_layout_by_hand(tiny_config):
    """(bytes, out/in) per weight matrix: q 64x64, k and v 32x64; o 64x64; gate and up 128x64, down 64x128;
    lm_head 100x64. bf16 is 2 bytes; two-way tensor parallelism halves q/k/v/gate/up/lm_head by rows (they read
    the hidden state) and o/down by columns."""
    spec = load_model(tiny_config)
    ops = {op.name: op for op in step_ops(spec, load_format("bf16"), 16, Step(1, 1, 10))}
    assert ops["attn_qkv"].matrices == ((64 * 64 * 2, 1.0), (32 * 64 * 2, 0.5), (32 * 64 * 2, 0.5))
    assert ops["attn_out"].matrices == ((64 * 64 * 2, 1.0),)
    assert ops["mlp"].matrices == ((128 * 64 * 2, 2.0), (128 * 64 * 2, 2.0), (64 * 128 * 2, 0.5))
    assert ops["lm_head"].matrices == ((100 * 64 * 2, 100 / 64),)
    two = {op.name: op for op in step_ops(spec, load_format("bf16"), 16, Step(1, 1, 10, tp=2))}
    assert two["mlp"].matrices == ((64 * 64 * 2, 1.0), (64 * 64 * 2, 1.0), (64 * 64 * 2, 1.0))
    assert two["attn_out"].matrices == ((64 * 32 * 2, 2.0),)
    # the shapes account for every weight of the operator (bias-free model)
    for op in ops.values():
        if op.matrices:
            assert sum(size for size, _ in op.matrices) == op.weight_bytes


def test_every_matmul_knows_its_matrices():
    """Every catalog model (MLA, linear attention, MoE, plain and gated MLPs): a profile can time each matrix."""
    for model in catalog.model_ids():
        for op in step_ops(load_model(model), load_format("bf16"), 16, Step(1, 1, 10)):
            if op.kind == "matmul":
                assert op.matrices and all(size > 0 and aspect > 0 for size, aspect in op.matrices), (model, op.name)


def test_attended_keys_with_window():
    assert attended_keys(10, 1, None) == 11
    assert attended_keys(10, 1, 4) == 4
    assert attended_keys(0, 6, 4) == 1 + 2 + 3 + 4 + 4 + 4
    assert attended_keys(2, 3, 4) == 3 + 4 + 4


def test_expected_experts_uniform_routing():
    assert expected_experts(8, 2, 1) == pytest.approx(2)  # one token touches exactly k experts
    assert expected_experts(8, 2, 2) == pytest.approx(8 * (1 - 0.75**2))
    assert expected_experts(128, 8, 10_000) == pytest.approx(128)


def test_moe_decode_reads_only_routed_experts():
    spec = load_model("mixtral-8x7b")
    ops = _by_name(step_ops(spec, load_format("bf16"), 16, Step(1, 1, 100)))
    per_expert = 3 * 4096 * 14336
    assert ops["moe_experts"]["weight"] == pytest.approx(32 * 2 * per_expert * 2)  # 32 layers x top-2 x 2 bytes
    ops4 = _by_name(step_ops(spec, load_format("bf16"), 16, Step(4, 1, 100)))
    assert ops4["moe_experts"]["weight"] == pytest.approx(32 * 8 * (1 - 0.75**4) * per_expert * 2)


def test_tensor_parallel_splits_and_adds_allreduce(tiny_config):
    spec = load_model(tiny_config)
    one = _by_name(step_ops(spec, load_format("bf16"), 16, Step(1, 1, 10, tp=1)))
    two = _by_name(step_ops(spec, load_format("bf16"), 16, Step(1, 1, 10, tp=2)))
    assert two["mlp"]["weight"] == one["mlp"]["weight"] / 2
    assert two["attention"]["kv"] == one["attention"]["kv"] / 2  # 2 KV heads, one per device
    assert "allreduce" not in one and two["allreduce"]["count"] == 4  # two per layer
    four = _by_name(step_ops(spec, load_format("bf16"), 16, Step(1, 1, 10, tp=4)))
    assert four["attention"]["kv"] == one["attention"]["kv"] / 2  # KV heads replicated beyond 2 devices


def test_mla_caches_the_latent():
    spec = load_model("deepseek-v3")
    ops = _by_name(step_ops(spec, load_format("bf16"), 16, Step(1, 1, 1000)))
    assert ops["attention"]["kv"] == pytest.approx(61 * 1001 * (512 + 64) * 2)


def test_quantized_formats_keep_conventions():
    spec = load_model("llama-2-7b")
    q4 = _by_name(step_ops(spec, load_format("q4_0"), 16, Step(1, 1, 0)))
    assert q4["lm_head"]["weight"] == pytest.approx(32000 * 4096 * 210 / 256)  # output.weight in Q6_K
    assert q4["mlp"]["weight"] == pytest.approx(32 * 3 * 4096 * 11008 * 18 / 32)
    oss = load_model("gpt-oss-20b")
    mx = _by_name(step_ops(oss, load_format("mxfp4"), 16, Step(1, 1, 0)))
    # llama.cpp's MXFP4 files keep attention in Q8_0: 8.5 bits (the biases, f32 in the file, are counted with
    # their matrix: 0.1% of the group)
    assert mx["attn_qkv"]["weight"] == pytest.approx(24 * (2880 * (4096 + 1024) + 5120) * 8.5 / 8)
    assert mx["moe_experts"]["weight"] == pytest.approx(24 * 4 * (3 * 2880 * 2880 + 2 * 2880 + 2880) * 4.25 / 8)


def test_ring_allreduce_pays_a_latency_per_step(tiny_config, point_rows):
    """A ring all-reduce over N devices is a reduce-scatter then an all-gather: 2(N-1) messages in series, each
    carrying 1/N of the data, so 2(N-1)/N of the message crosses each link. Its latency is a fixed part (the
    profile's allreduce latency: launch, synchronisation) plus NCCL's latency per ring step, 2(N-1) times: 0.4 µs
    over NVLink, 1.0 µs over PCIe (NCCL src/graph/tuning.cc, ring, LL)."""
    from llm_roofline.hardware import load_hardware
    from llm_roofline.timing import Efficiency

    spec = load_model(tiny_config)
    for tp, steps in ((2, 2), (4, 6), (8, 14)):
        (op,) = [o for o in step_ops(spec, load_format("bf16"), 16, Step(1, 1, 10, tp=tp)) if o.kind == "allreduce"]
        assert op.latency_steps == steps and op.count == 2 * spec.n_layers
        assert op.comm_bytes == pytest.approx(2 * (tp - 1) / tp * spec.hidden_size * 2)  # one bf16 vector
        hw = load_hardware("h100")  # NVLink 900 GB/s both ways: 450 GB/s each way
        eff = Efficiency(0.5, 0.5, 0.0, 3.0, "test")
        n = op.count
        ceiling, estimate = point_rows(spec, load_format("bf16"), 16, hw, eff, 1, 1, 10, tp)["allreduce"]
        assert ceiling == pytest.approx(n * op.comm_bytes / 450e9)
        assert estimate == pytest.approx(n * (op.comm_bytes / 450e9 / 0.5 + 3e-6 + steps * 0.4e-6))
        pcie = load_hardware("4090")  # no NVLink: PCIe 4.0 x16, 64 GB/s both ways
        estimate = point_rows(spec, load_format("bf16"), 16, pcie, eff, 1, 1, 10, tp)["allreduce"][1]
        assert estimate == pytest.approx(n * (op.comm_bytes / 32e9 / 0.5 + 3e-6 + steps * 1.0e-6))


@pytest.mark.parametrize("weights,dtype", [("bf16", "bf16"), ("f16", "fp16"), ("f32", "fp32"), ("q4_0", "fp16"),
                                           ("fp8", "fp16")])
def test_attention_runs_on_the_activations_float_units(weights, dtype):
    """A bf16 model's attention multiplies in bf16: timing it at the fp16 rate cost a CPU profile (PyTorch's
    fp16 CPU kernels run at a thousandth of its bf16 ones) 70 ms a step for SmolLM2-135M at batch 8."""
    from llm_roofline.architecture import load_model
    from llm_roofline.formats import load_format
    from llm_roofline.ops import Step, step_ops

    ops = step_ops(load_model("llama-3.2-1b"), load_format(weights), 16, Step(8, 1, 64))
    (attention,) = [o for o in ops if o.name == "attention"]
    assert attention.compute == dtype
