"""Expert parallel (--ep): whole experts spread over devices, the dense part in data-parallel replicas, all-to-all
traffic; every figure below worked out by hand from Qwen3-30B-A3B's config.json."""

import json

import pytest
import llm_roofline as lr
from llm_roofline.catalog import CATALOG_DIR
from tests.test_cli import run

CFG = json.loads((CATALOG_DIR / "models" / "qwen3-30b-a3b.json").read_text())
H, E, K, LAYERS = CFG["hidden_size"], CFG["num_experts"], CFG["num_experts_per_tok"], CFG["num_hidden_layers"]
PER_EXPERT = 3 * H * CFG["moe_intermediate_size"]  # gate, up, down
KV_PER_TOKEN = LAYERS * 2 * CFG["num_key_value_heads"] * CFG["head_dim"] * 2  # K and V, bf16


def _rows(p, phase="decode"):
    return {r.name: r for r in p.operators if r.phase == phase}


def test_experts_and_sequences_split_over_devices_by_hand():
    b, ep = 16, 4  # tp 1: four replicas of the dense part, four sequences each
    one = lr.predict("qwen3-30b-a3b", "h100", batch=b, prompt=1, context=0, gen=1)
    p = lr.predict("qwen3-30b-a3b", "h100", batch=b, prompt=1, context=0, gen=1, ep=ep)
    rows, rows1 = _rows(p), _rows(one)
    touched = E * (1 - (1 - K / E) ** b)  # distinct experts the 16 tokens touch, uniform routing
    assert rows["moe_experts"].weight_bytes == pytest.approx(LAYERS * touched / ep * PER_EXPERT * 2, rel=1e-9)
    assert rows["moe_experts"].flops == pytest.approx(LAYERS * 2 * K * PER_EXPERT * b / ep, rel=1e-9)
    # the dense part: every device reads its own copy of the weights, for a quarter of the tokens
    assert rows["attn_qkv"].weight_bytes == pytest.approx(rows1["attn_qkv"].weight_bytes, rel=1e-9)
    assert rows["attn_qkv"].flops == pytest.approx(rows1["attn_qkv"].flops / ep, rel=1e-9)
    assert rows["attention"].kv_bytes == pytest.approx(rows1["attention"].kv_bytes / ep, rel=1e-9)
    # two all-to-alls per layer; each device sends its 4 tokens' hidden states (bf16) to the 3/4 of their 8
    # experts that live elsewhere
    assert rows["moe_alltoall"].comm_bytes == pytest.approx(2 * LAYERS * (b / ep) * K * (ep - 1) / ep * H * 2,
                                                            rel=1e-9)
    assert rows["moe_alltoall"].kind == "alltoall" and rows["moe_alltoall"].bound == "link"
    assert "allreduce" not in rows  # tp 1: no all-reduce
    assert p.workload.ep == ep and p.memory.per_device
    # memory per device: a quarter of the experts, the dense weights whole, four sequences' KV cache
    expert_gb = LAYERS * E * PER_EXPERT * 2 / 1e9
    assert one.memory.weights_gb - p.memory.weights_gb == pytest.approx(expert_gb * (1 - 1 / ep), rel=1e-9)
    deep = lr.predict("qwen3-30b-a3b", "h100", batch=b, prompt=1000, gen=24, ep=ep)
    assert deep.memory.kv_cache_gb == pytest.approx((b / ep) * 1024 * KV_PER_TOKEN / 1e9, rel=1e-9)


def test_the_busiest_replica_holds_whole_sequences():
    """Batch 3 over 8 replicas: some device runs the dense part for a whole sequence, whatever the others do."""
    one = lr.predict("qwen3-30b-a3b", "h100", batch=1, prompt=1, context=0, gen=1)
    p = lr.predict("qwen3-30b-a3b", "h100", batch=3, prompt=1, context=0, gen=1, ep=8)
    rows, rows1 = _rows(p), _rows(one)
    for name in ("attn_qkv", "attention", "lm_head"):
        assert rows[name].flops == pytest.approx(rows1[name].flops, rel=1e-9)
    assert rows["moe_experts"].flops == pytest.approx(LAYERS * 2 * K * PER_EXPERT * 3 / 8, rel=1e-9)
    assert p.decode.ceiling_tok_s < 1 / (rows1["attn_qkv"].weight_bytes / 3.35e12)  # the dense weights alone
    assert p.memory.kv_cache_gb == pytest.approx(one.memory.kv_cache_gb, rel=1e-9)


def test_expert_parallel_with_tensor_parallel_replicas_by_hand():
    b, tp, ep = 8, 2, 8  # four replicas of two devices; each replica holds two sequences
    p = lr.predict("qwen3-30b-a3b", "h100", batch=b, prompt=1, context=0, gen=1, tp=tp, ep=ep)
    rows = _rows(p)
    # one all-reduce per layer (after attention): the experts return their outputs by the all-to-all
    ring = 2 * (tp - 1) / tp * H * 2
    assert rows["allreduce"].count == LAYERS
    assert rows["allreduce"].comm_bytes == pytest.approx(LAYERS * (b * tp / ep) * ring, rel=1e-9)
    assert rows["moe_alltoall"].comm_bytes == pytest.approx(2 * LAYERS * (b / ep) * K * (ep - 1) / ep * H * 2,
                                                            rel=1e-9)
    assert p.memory.min_devices == 2  # the whole model fits an H100 at tp 2 already (ep 2: dp 1)
    assert lr.compile("qwen3-30b-a3b", "h100", tp=tp, ep=ep).devices == ep


def test_ep_equal_to_tp_needs_no_all_to_all():
    p = lr.predict("qwen3-30b-a3b", "h100", batch=8, tp=4, ep=4)
    rows = _rows(p)
    assert "moe_alltoall" not in rows and rows["allreduce"].count == 2 * LAYERS


def test_more_expert_devices_never_read_more_per_device_and_the_ceiling_holds():
    last = None
    for ep in (1, 2, 4, 8, 16):
        p = lr.predict("qwen3-30b-a3b", "h100", batch=32, prompt=512, gen=128, ep=ep)
        assert p.decode.ceiling_tok_s >= p.decode.estimate_tok_s
        w = p.memory.weights_gb
        assert last is None or w < last
        last = w


@pytest.mark.parametrize("kw,match", [
    ({"model": "llama-3.1-8b", "ep": 2}, "dense"),
    ({"model": "qwen3-30b-a3b", "tp": 4, "ep": 6}, "multiple of --tp 4"),
    ({"model": "qwen3-30b-a3b", "ep": 3}, "valid: 2, 4, 8"),
    ({"model": "qwen3-30b-a3b", "ep": 0}, "ep"),
])
def test_bad_expert_parallel_layouts_are_refused_in_one_line(kw, match):
    model = kw.pop("model")
    with pytest.raises(lr.UserError, match=match) as err:
        lr.predict(model, "h100", **kw)
    assert "\n" not in str(err.value)


def test_cli_ep_json_and_a_refusal(capsys):
    code, out, _ = run(capsys, "predict", "qwen3-30b-a3b", "-H", "h100", "--ep", "4", "--batch", "16", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["workload"]["ep"] == 4 and any(o["name"] == "moe_alltoall" for o in data["operators"])
    code, out, err = run(capsys, "predict", "llama-3.1-8b", "-H", "h100", "--ep", "2")
    assert code == 2 and "dense" in err and len(err.strip().splitlines()) == 1 and not out


def test_plan_searches_expert_parallel_layouts_of_a_moe():
    from llm_roofline.plan import plan

    r = plan("qwen3-30b-a3b", ["h100"], rate=20.0, prompt=512, gen=128, max_devices=8, tpot_ms=40.0)
    layouts = {(c.tp, c.ep) for c in r.configs}
    assert any(ep > 1 for _, ep in layouts)
    for c in r.configs:
        assert c.devices == max(c.tp, c.ep) * c.pp * c.replicas <= 8
        assert c.ep == 1 or (c.ep % c.tp == 0 and 128 % c.ep == 0)
    dense = plan("llama-3.1-8b", ["h100"], rate=2.0, prompt=512, gen=128, max_devices=4)
    assert all(c.ep == 1 for c in dense.configs)
