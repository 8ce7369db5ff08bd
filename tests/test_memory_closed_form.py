"""The closed-form memory answers (largest batch, longest context, fewest devices) against a brute-force oracle:
bisection and a linear scan over the footprint's definition, written here independently of memory.py."""

import random

import pytest

from llm_roofline import catalog, load_format, load_hardware, load_model
from llm_roofline.memory import activation_bytes, kv_cache_bytes, memory_budget, weight_bytes

GB = 1e9
GIB = 2**30  # capacities are sold in binary units


def total(spec, fmt, bits, batch, prompt, length, tp, overhead_gb):
    return (weight_bytes(spec, fmt, tp) + kv_cache_bytes(spec, bits, batch, length, tp)
            + activation_bytes(spec, fmt, batch, min(prompt, length), tp) + overhead_gb * GB)


def largest(fits, upper):
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


CASES = [(m, d, f) for m in ("llama-3.1-8b", "gemma-3-27b", "qwen3-30b-a3b", "gpt-oss-20b", "qwen3.5-27b",
                              "deepseek-v2-lite", "gemma-2-2b", "llama-3.1-70b")
         for d, f in (("4090", "q4_k_m"), ("h100", "bf16"), ("m2-ultra", "q8_0"), ("3060", "q4_0"))]


@pytest.mark.parametrize("model,device,weights", CASES)
def test_closed_form_equals_search(model, device, weights):
    rng = random.Random(hash((model, device, weights)) & 0xFFFF)
    spec, fmt, hw = load_model(model), load_format(weights), load_hardware(device)
    cap = hw.memory_gb * GIB
    over = hw.defaults.runtime_overhead_gb
    for _ in range(6):
        batch, prompt, length = rng.choice((1, 4, 32)), rng.choice((16, 512, 4096)), rng.choice((64, 4096, 70000))
        tp = rng.choice((1, 2))
        m = memory_budget(spec, fmt, 16, batch, prompt, length, tp, hw.memory_gb, over)
        assert m.max_batch == largest(lambda b: total(spec, fmt, 16, b, prompt, length, tp, over) <= cap, 1 << 24)
        assert m.max_context == largest(lambda n: total(spec, fmt, 16, batch, prompt, n, tp, over) <= cap, 1 << 30)
        scan = next((n for n in list(range(1, 16)) + list(range(16, 4097, 8))
                     if total(spec, fmt, 16, batch, prompt, length, n, over) <= cap), None)
        assert m.min_devices == scan


def test_sliding_window_kink():
    """Gemma 2: alternate layers keep a 4096-token window, so the cache grows at half the rate past 4096 tokens;
    a capacity just above the 4096-token total admits far more than twice as many tokens as one just below."""
    spec, fmt = load_model("gemma-2-2b"), load_format("f16")
    base = total(spec, fmt, 16, 1, 16, 4096, 1, 0)
    m = memory_budget(spec, fmt, 16, 1, 16, 4096, 1, (base + 1) / GIB, 0.0)
    assert m.max_context == 4096
    per_token_after = kv_cache_bytes(spec, 16, 1, 5000) - kv_cache_bytes(spec, 16, 1, 4999)
    per_token_before = kv_cache_bytes(spec, 16, 1, 100) - kv_cache_bytes(spec, 16, 1, 99)
    assert per_token_after == pytest.approx(per_token_before / 2)
    m = memory_budget(spec, fmt, 16, 1, 16, 4096, 1, (base + 1000 * per_token_after) / GIB, 0.0)
    assert m.max_context == 4096 + 1000


def test_capacity_is_binary():
    """An RTX 4090 holds 24 GiB = 25.77e9 bytes: a 24.5e9-byte workload fits, a 25.9e9-byte one does not."""
    spec, fmt = load_model("llama-3.1-8b"), load_format("f16")
    base = total(spec, fmt, 16, 1, 16, 4096, 1, 0)  # 16.1e9 bytes of weights and a little KV
    for target, fits in ((24.5e9, True), (25.9e9, False)):
        over = (target - base) / GB  # runtime overhead that brings the total to the target
        m = memory_budget(spec, fmt, 16, 1, 16, 4096, 1, 24, over)
        assert m.total_gb == pytest.approx(target / GB) and m.fits is fits
