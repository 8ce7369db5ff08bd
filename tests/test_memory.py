import pytest

from llm_roofline import predict
from llm_roofline.architecture import load_model
from llm_roofline.formats import load_format
from llm_roofline.memory import kv_cache_bytes, weight_bytes


def test_kv_cache_by_hand(tiny_config):
    spec = load_model(tiny_config)
    # 2 layers x 2 KV heads x 16 x (K and V) x 2 bytes = 256 B per token; 2 sequences of 100 tokens
    assert kv_cache_bytes(spec, 16, batch=2, length=100) == 2 * 100 * 256


def test_kv_gqa_mla_window_mqa():
    # Llama-3.1-8B: 32 layers x 8 KV heads x 128 x 2 x 2 B = 131072 B per token
    assert kv_cache_bytes(load_model("llama-3.1-8b"), 16, 1, 1) == 131072
    # DeepSeek-V3 caches the 512 + 64 latent: 61 layers x 576 x 2 B
    assert kv_cache_bytes(load_model("deepseek-v3"), 16, 1, 1) == 61 * 576 * 2
    # Falcon-7B is multi-query: 32 layers x 1 x 64 x 2 x 2 B
    assert kv_cache_bytes(load_model("falcon-7b"), 16, 1, 1) == 32 * 64 * 4
    # Gemma-2-9B at 8192 tokens: 21 sliding layers keep 4096, 21 global keep 8192; 8 x 256 x 2 x 2 B each
    assert kv_cache_bytes(load_model("gemma-2-9b"), 16, 1, 8192) == 21 * 8192 * (4096 + 8192)


def test_linear_attention_state_does_not_grow():
    spec = load_model("qwen3.5-27b")
    short, long = kv_cache_bytes(spec, 16, 1, 1000), kv_cache_bytes(spec, 16, 1, 2000)
    # only the 16 full-attention layers grow: 4 KV heads x 256 x 2 x 2 B per token each
    assert long - short == 1000 * 16 * 4 * 256 * 4


def test_weight_bytes_f16_and_tp():
    spec = load_model("llama-3.1-8b")
    assert weight_bytes(spec, load_format("f16")) == pytest.approx(8_030_261_248 * 2)
    # embedding and norms are replicated on every device; the rest is split
    assert weight_bytes(spec, load_format("f16"), tp=2) > weight_bytes(spec, load_format("f16")) / 2


def test_fit_min_devices_max_batch_and_context():
    p = predict("llama-3.1-8b", "4090", weights="q4_k_m", prompt=1024, gen=1024)
    m = p.memory
    assert m.fits and m.min_devices == 1
    # longest context: what is left after weights, activations and runtime, at 131072 B per token
    assert m.max_context > 20_000
    # a batch one larger than max_batch must not fit
    over = predict("llama-3.1-8b", "4090", weights="q4_k_m", prompt=1024, gen=1024, batch=m.max_batch + 1)
    assert not over.memory.fits
    at = predict("llama-3.1-8b", "4090", weights="q4_k_m", prompt=1024, gen=1024, batch=m.max_batch)
    assert at.memory.fits


def test_too_large_still_gets_speed_and_device_count():
    p = predict("llama-3.1-405b", "h100")
    assert not p.memory.fits and p.memory.min_devices in range(11, 13)  # ~812 GB of bf16 weights / 80 GB
    assert p.decode.ceiling_tok_s > 0 and any("does not fit" in n for n in p.notes)
