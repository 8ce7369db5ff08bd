"""Decoders released in 2025, against transformers' own model of each config built on the meta device (no
weights, no remote code): parameter counts within 0.1%; KV bytes per token worked out by hand."""

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from llm_roofline.architecture import param_counts, spec_from_config  # noqa: E402
from llm_roofline.memory import kv_cache_bytes  # noqa: E402

GLM_45_AIR = dict(hidden_size=4096, num_hidden_layers=46, num_attention_heads=96, num_key_value_heads=8,
                  head_dim=128, intermediate_size=10944, moe_intermediate_size=1408, n_routed_experts=128,
                  n_shared_experts=1, num_experts_per_tok=8, first_k_dense_replace=1, vocab_size=151552,
                  attention_bias=True, partial_rotary_factor=0.5, num_nextn_predict_layers=1,
                  tie_word_embeddings=False)  # zai-org/GLM-4.5-Air config.json


HUNYUAN_A13B = dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                    head_dim=128, intermediate_size=3072, num_experts=64, moe_topk=[8] * 32, vocab_size=128167,
                    tie_word_embeddings=True)  # tencent/Hunyuan-A13B-Instruct's shapes


def meta_params(cfg) -> int:
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(cfg)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("model_type,overrides", [
    ("smollm3", {}), ("olmo3", {}), ("exaone4", {}), ("cohere2", {}), ("granitemoe", {}),
    ("glm4_moe", GLM_45_AIR), ("qwen3_next", {}), ("ernie4_5_moe", {}), ("mamba2", {}),
    ("granitemoehybrid", {}), ("falcon_h1", {}), ("jamba", {}),
    ("deepseek_v32", {"num_hidden_layers": 4, "first_k_dense_replace": 1}),
    ("granitemoehybrid", {"layer_types": ["attention" if i % 8 == 7 else "mamba" for i in range(32)]}),
    ("mamba", {}), ("mamba", dict(hidden_size=2560, num_hidden_layers=64, vocab_size=50280, use_bias=True)),
    ("minimax", {}),
    ("hunyuan_v1_moe", HUNYUAN_A13B),
])
def test_parameters_match_transformers_meta_model(model_type, overrides):
    cfg = transformers.AutoConfig.for_model(model_type, **overrides)
    spec = spec_from_config(cfg.to_dict(), model_type)
    assert param_counts(spec).total == pytest.approx(meta_params(cfg), rel=1e-3)


def test_cohere2_sliding_layers_keep_their_window():
    """Command R7B's pattern: every 4th layer attends to the whole context, the others to a 4096-token window.
    At 128k tokens the cache is (full layers x 131072 + sliding layers x 4096) x 2 (K, V) x KV heads x head_dim
    x 2 bytes."""
    cfg = transformers.AutoConfig.for_model("cohere2", num_hidden_layers=32, hidden_size=4096,
                                            num_attention_heads=32, num_key_value_heads=8, sliding_window=4096,
                                            layer_types=["full_attention" if (i + 1) % 4 == 0 else
                                                         "sliding_attention" for i in range(32)])
    spec = spec_from_config(cfg.to_dict(), "command-r7b-like")
    per_layer_token = 2 * 8 * 128 * 2
    want = (8 * 131072 + 24 * 4096) * per_layer_token
    assert kv_cache_bytes(spec, 16, 1, 131072) == pytest.approx(want)


def test_glm4_moe_reads_its_routed_experts():
    spec = spec_from_config(transformers.AutoConfig.for_model("glm4_moe", **GLM_45_AIR).to_dict(), "glm-4.5-air")
    assert spec.moe.n_experts == 128 and spec.moe.top_k == 8 and spec.moe.n_shared == 1
    assert [layer.mlp for layer in spec.layers[:2]] == ["dense", "moe"]
    # active: everything but the 120 experts each MoE layer leaves unread
    unread = 45 * 120 * 3 * 4096 * 1408
    assert param_counts(spec).active == pytest.approx(param_counts(spec).total - unread, rel=1e-9)


def test_qwen3_next_caches_only_its_full_attention_layers():
    """Qwen3-Next-80B-A3B: 36 Gated DeltaNet layers hold a fixed state; the 12 full-attention layers cache
    2 KV heads x 256 x (K, V) x 2 bytes per token each."""
    spec = spec_from_config(transformers.AutoConfig.for_model("qwen3_next").to_dict(), "qwen3-next")
    assert sum(layer.attention == "linear" for layer in spec.layers) == 36 and spec.moe.n_experts == 512
    per_token = kv_cache_bytes(spec, 16, 1, 10001) - kv_cache_bytes(spec, 16, 1, 10000)
    assert per_token == pytest.approx(12 * 2 * 256 * 2 * 2)


@pytest.mark.parametrize("overrides,total_b", [({}, 107.8), ({"num_local_experts": 128,
                                                            "interleave_moe_layer_step": 2}, 400.7)])
def test_llama4_scout_and_maverick(overrides, total_b):
    """Llama-4-Scout (16 experts in every layer) and Maverick (128 experts every other layer): parameters as
    transformers builds them (107.8 B and 400.7 B), 17 B active either way; chunked layers keep their 8192-token
    chunk and read half of it on average."""
    cfg = transformers.AutoConfig.for_model("llama4_text", **overrides)
    spec = spec_from_config(cfg.to_dict(), "llama4")
    counts = param_counts(spec)
    assert counts.total == pytest.approx(meta_params(cfg), rel=1e-3)
    assert counts.total / 1e9 == pytest.approx(total_b, rel=0.01)
    assert counts.active / 1e9 == pytest.approx(17.2, rel=0.03)
    chunked = [layer for layer in spec.layers if layer.held]
    assert len(chunked) == 36 and all(layer.held == 8192 and layer.window == 4096 for layer in chunked)
    # the cache at 128k tokens: 12 full layers x 131072 tokens + 36 chunked layers x 8192, x 2 x 8 x 128 x 2 bytes
    assert kv_cache_bytes(spec, 16, 1, 131072) == pytest.approx((12 * 131072 + 36 * 8192) * 2 * 8 * 128 * 2)


def test_mamba2_state_is_fixed_per_sequence():
    """Mamba-2 (the transformers default, Codestral-Mamba's shapes): 64 layers, each an fp32 state of 128 heads x 64
    x 128 and the convolution's last 3 inputs over 8192 + 2 x 8 x 128 channels in 16 bits; no KV cache."""
    import llm_roofline as lr

    spec = spec_from_config(transformers.AutoConfig.for_model("mamba2").to_dict(), "mamba2")
    per_layer = 128 * 64 * 128 * 4 + (8192 + 2 * 8 * 128) * 3 * 2
    for length in (1, 1000, 100000):
        assert kv_cache_bytes(spec, 16, 1, length) == pytest.approx(64 * per_layer)
    p = lr.predict(spec, "h100", batch=4, context=50000)
    assert p.memory.kv_cache_gb * 1e9 == pytest.approx(4 * 64 * per_layer) and p.decode.kv_bytes_per_step > 0


def test_falcon_h1_keeps_a_kv_cache_and_a_state():
    """Falcon-H1 (transformers' default shapes): 32 layers, each attention (8 KV heads x 128) beside a Mamba-2 mixer
    (128 heads x 8 x d_state 256 in fp32, a 1536-channel convolution): KV grows with the context, the state not."""
    spec = spec_from_config(transformers.AutoConfig.for_model("falcon_h1").to_dict(), "falcon-h1")
    state = 32 * (128 * 8 * 256 * 4 + 1536 * 3 * 2)
    kv_per_token = 32 * 8 * 128 * 2 * 2
    for length in (1, 4096, 65536):
        assert kv_cache_bytes(spec, 16, 1, length) == pytest.approx(state + length * kv_per_token)


def test_jamba_mamba1_state_and_its_four_attention_layers():
    """Jamba v0.1: 32 layers, attention in 4 of them (every 8th from the 5th), Mamba-1 in 28: a state of
    d_inner 8192 x d_state 16 in fp32 and the convolution's last 3 of 8192 channels in 16 bits per layer."""
    spec = spec_from_config(transformers.AutoConfig.for_model("jamba").to_dict(), "jamba")
    assert [i for i, layer in enumerate(spec.layers) if layer.attention == "gqa"] == [4, 12, 20, 28]
    state = 28 * (8192 * 16 * 4 + 8192 * 3 * 2)
    for length in (1, 100000):
        assert kv_cache_bytes(spec, 16, 1, length) == pytest.approx(state + length * 4 * 8 * 128 * 2 * 2)


def test_deepseek_v32_sparse_attention_reads_the_top_k():
    """DeepSeek-V3.2: the cache holds each token's MLA latent (512 + 64 values, bf16) and its indexer key (128 FP8
    values and an fp32 scale); a decoding token's indexer reads every cached key, its attention only the top
    2048 latents."""
    import llm_roofline as lr

    spec = spec_from_config(transformers.AutoConfig.for_model("deepseek_v32").to_dict(), "deepseek-v3.2")
    per_token = 61 * ((512 + 64) * 2 + 128 + 4)
    assert kv_cache_bytes(spec, 16, 1, 100_000) == pytest.approx(100_000 * per_token)
    p = lr.predict(spec, "h200", weights="fp8", tp=8, batch=1, context=100_000, gen=1)
    rows = {r.name: r for r in p.operators if r.phase == "decode"}
    # one step from depth 100000 (the run's mean depth is 100000.5, as every decode run is averaged over its
    # continuous depth): the attention reads 2048 latents and writes one; the indexer reads every key
    assert rows["attention"].kv_bytes == pytest.approx(61 * (2048 + 1) * (512 + 64) * 2, rel=1e-9)
    assert rows["indexer"].kv_bytes == pytest.approx(61 * (100_000.5 + 1) * 132, rel=1e-9)


def test_mamba_state_is_fixed_per_sequence():
    """Mamba (transformers' default shapes, read from its config): per layer an fp32 state of d_inner x state_size
    (d_inner = 2 x hidden_size) and the convolution's last conv_kernel - 1 inputs over d_inner channels in 16
    bits, whatever the length."""
    cfg = transformers.AutoConfig.for_model("mamba")
    spec = spec_from_config(cfg.to_dict(), "mamba")
    d = 2 * cfg.hidden_size
    per_layer = d * cfg.state_size * 4 + d * (cfg.conv_kernel - 1) * 2
    for length in (1, 100000):
        assert kv_cache_bytes(spec, 16, 1, length) == pytest.approx(cfg.num_hidden_layers * per_layer)


def test_minimax_keeps_kv_for_softmax_layers_and_a_state_for_lightning_ones():
    """MiniMax (transformers' default: 32 layers alternating softmax and lightning attention, 32 heads of 128, 8 KV
    heads): softmax layers cache 2 x 8 x 128 x 2 bytes a token; lightning layers hold 32 x 128 x 128 fp32."""
    cfg = transformers.AutoConfig.for_model("minimax")
    spec = spec_from_config(cfg.to_dict(), "minimax")
    full = sum(t == "full_attention" for t in cfg.layer_types)
    state = (32 - full) * 32 * 128 * 128 * 4
    for length in (1, 8192, 1 << 20):
        assert kv_cache_bytes(spec, 16, 1, length) == pytest.approx(full * length * 2 * 8 * 128 * 2 + state)


@pytest.mark.parametrize("overrides,match", [
    ({"moe_topk": [8] * 31 + [4]}, "differs between layers"),
    ({"use_cla": True}, "cross-layer attention"),
])
def test_hunyuan_layouts_not_modelled_are_refused(overrides, match):
    from llm_roofline.errors import UserError

    raw = transformers.AutoConfig.for_model("hunyuan_v1_moe", **HUNYUAN_A13B).to_dict()
    with pytest.raises(UserError, match=match):
        spec_from_config({**raw, **overrides}, "hunyuan")
