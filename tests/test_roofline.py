"""Headline answers worked out by hand, and the physics as hypothesis properties."""

from dataclasses import replace

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from llm_roofline import load_hardware, predict
from llm_roofline.errors import UserError


def test_llama_70b_fp16_on_h100_is_24_tok_s_and_memory_bound():
    p = predict("llama-3.1-70b", "h100", weights="f16")
    # 70.55e9 weights minus the 128256 x 8192 embedding table (a lookup reads one row) at 2 bytes:
    streamed = (70_553_706_496 - 128_256 * 8192) * 2
    assert p.decode.weight_bytes_per_step == pytest.approx(streamed, rel=1e-4)
    assert 23 <= p.decode.ceiling_tok_s <= 25
    assert p.decode.ceiling_tok_s == pytest.approx(3350e9 / p.decode.bytes_per_step, rel=0.01)
    assert p.decode.bound == "memory" and p.decode.memory_bound_by == "weights"
    assert not p.memory.fits and p.memory.min_devices == 2


def test_8b_batch_256_on_h100_is_kv_bound():
    p = predict("llama-3.1-8b", "h100", batch=256)
    # KV per token: 32 layers x 8 heads x 128 x (K,V) x 2 B = 131072 B; mean depth 512 + 128 -> 21.5 GB a step,
    # against 15.0 GB of streamed weights: the cache dominates.
    assert p.decode.kv_bytes_per_step == pytest.approx(256 * 640 * 131072, rel=0.01)
    assert p.decode.bound == "memory" and p.decode.memory_bound_by == "kv_cache"


def test_large_batch_short_context_is_compute_bound():
    # At depth ~16 the cache is tiny. A 4090 multiplies fp16 at 330 TFLOPS with fp16 accumulation (2 x the
    # catalog's fp32-accumulate 165.2), so with 1008 GB/s its ridge is 328 FLOP/B: batch 512 sits above it
    # (each weight byte does 2 x 512 / 2 = 512 FLOPs), batch 128 below.
    assert predict("llama-3.1-8b", "4090", batch=512, prompt=8, gen=16).decode.bound == "compute"
    assert predict("llama-3.1-8b", "4090", batch=128, prompt=8, gen=16).decode.bound == "memory"


def test_prefill_is_compute_bound():
    p = predict("llama-3.1-8b", "h100", prompt=2048)
    assert p.prefill.bound == "compute"
    # 2 FLOPs per layer weight per prompt token (6.98e9 weights outside embedding and lm_head), plus
    # attention and one lm_head row: the matmuls alone give the floor of the prefill work
    assert p.prefill.flops >= 2 * 2048 * 6.98e9


def test_estimate_uses_class_defaults_and_overrides():
    p = predict("llama-3.1-8b", "h100", bandwidth_efficiency=0.5, step_overhead_us=0)
    assert p.decode.tpot_ms == pytest.approx(p.decode.tpot_floor_ms / 0.5, rel=0.01)
    assert "overridden" in p.efficiency.source
    with pytest.raises(UserError):
        predict("llama-3.1-8b", "h100", bandwidth_efficiency=1.5)


def test_moe_active_bytes():
    dense_equiv = predict("mixtral-8x7b", "h100", weights="f16")
    # 12.88e9 active weights minus the 32000 x 4096 embedding at 2 bytes, KV aside
    assert dense_equiv.decode.weight_bytes_per_step == pytest.approx((12_879_921_152 - 32000 * 4096) * 2, rel=0.01)


def test_tensor_parallel_speeds_decode_and_adds_link_time():
    one = predict("llama-3.1-70b", "h100", weights="f16")
    four = predict("llama-3.1-70b", "h100", weights="f16", tp=4)
    assert four.decode.link_ms > 0
    assert one.decode.ceiling_tok_s * 3 < four.decode.ceiling_tok_s < one.decode.ceiling_tok_s * 4
    assert four.memory.fits and four.memory.per_device


def test_sliding_window_caps_kv_reads():
    short = predict("mistral-7b-v0.1", "h100", context=4096, gen=1)
    long = predict("mistral-7b-v0.1", "h100", context=30000, gen=1)
    assert long.decode.kv_bytes_per_step == pytest.approx(short.decode.kv_bytes_per_step, rel=0.01)


# --------------------------------------------------------------------------------------------- properties

MODELS = st.sampled_from(["llama-3.2-1b", "qwen3-30b-a3b", "gemma-2-2b", "deepseek-v2-lite", "gpt-oss-20b",
                          "falcon-7b", "qwen3.5-27b"])
DEVICES = st.sampled_from(["h100", "4090", "m2-ultra", "mi300x", "epyc-9654", "a100", "1080-ti", "3090",
                           "apple-m5", "v100"])
FORMATS = st.sampled_from([None, "f32", "f16", "bf16", "fp8", "int8", "q8_0", "q6_k", "q5_k_m", "q5_0", "q4_k_m",
                           "q4_k_s", "q4_0", "q3_k_m", "q2_k", "int4-awq", "int4-gptq", "nvfp4", "mxfp4",
                           "exl2-4.0", "q4f16_1"])
ENGINES = st.sampled_from([None, "llama.cpp-cuda", "llama.cpp-metal", "vllm", "tensorrt-llm", "gpt-fast",
                           "exllamav2", "mlc-llm"])
# Formats in order of bits per weight that share a kernel family (same matmul dtype and block layout family):
# within each chain fewer bits must never decode slower, whatever the engine.
BIT_CHAINS = (("q8_0", "q6_k", "q5_k_m", "q4_k_m", "q3_k_m", "q2_k"), ("q8_0", "q5_0", "q4_0"),
              ("f32", "f16"), ("f16", "fp8", "nvfp4"))
CHAIN_PAIRS = st.sampled_from([(c[i], c[j]) for c in BIT_CHAINS for i in range(len(c)) for j in range(i + 1, len(c))])


@given(MODELS, DEVICES, st.floats(1.1, 10), FORMATS, ENGINES, st.integers(1, 64))
def test_more_bandwidth_is_never_slower(model, device, factor, weights, engine, batch):
    hw = load_hardware(device)
    fast = replace(hw, bandwidth_gbps=hw.bandwidth_gbps * factor)
    a = predict(model, hw, gen=8, weights=weights, engine=engine, batch=batch)
    b = predict(model, fast, gen=8, weights=weights, engine=engine, batch=batch)
    assert b.decode.tpot_floor_ms <= a.decode.tpot_floor_ms
    assert b.decode.tpot_ms <= a.decode.tpot_ms
    assert b.prefill.ttft_ms <= a.prefill.ttft_ms


@given(MODELS, DEVICES, st.floats(1.1, 10), FORMATS, ENGINES)
def test_more_compute_is_never_slower(model, device, factor, weights, engine):
    hw = load_hardware(device)
    fast = replace(hw, peak_tflops={k: v * factor if v else v for k, v in hw.peak_tflops.items()})
    a = predict(model, hw, gen=8, prompt=1024, weights=weights, engine=engine)
    b = predict(model, fast, gen=8, prompt=1024, weights=weights, engine=engine)
    assert b.prefill.ttft_floor_ms <= a.prefill.ttft_floor_ms * (1 + 1e-12)
    assert b.prefill.ttft_ms <= a.prefill.ttft_ms * (1 + 1e-12)
    assert b.decode.tpot_ms <= a.decode.tpot_ms * (1 + 1e-12)


@given(MODELS, DEVICES, st.floats(2.0, 8.0), st.floats(2.0, 8.0), ENGINES)
def test_fewer_bits_never_slower_decode(model, device, bpw_a, bpw_b, engine):
    assume(bpw_a < bpw_b)
    lo = predict(model, device, weights=f"exl2-{bpw_a:.2f}", gen=8, engine=engine)
    hi = predict(model, device, weights=f"exl2-{bpw_b:.2f}", gen=8, engine=engine)
    assert lo.decode.tpot_floor_ms <= hi.decode.tpot_floor_ms
    assert lo.decode.tpot_ms <= hi.decode.tpot_ms


@given(MODELS, DEVICES, CHAIN_PAIRS, ENGINES, st.integers(1, 16))
def test_fewer_bits_never_slower_decode_across_formats(model, device, pair, engine, batch):
    more, fewer = pair
    hi = predict(model, device, weights=more, gen=8, engine=engine, batch=batch)
    lo = predict(model, device, weights=fewer, gen=8, engine=engine, batch=batch)
    assert lo.decode.tpot_floor_ms <= hi.decode.tpot_floor_ms * (1 + 1e-12)
    assert lo.decode.tpot_ms <= hi.decode.tpot_ms * (1 + 1e-12)


def test_fewer_bits_on_a_card_without_fast_fp16():
    """GTX 1080 Ti: fp16 at 1/64 rate. Q5_K_M keeps its lm_head in Q6_K, which must run through the same integer
    kernels as a Q6_K file's (it was timed on the fp16 path, making the smaller file decode slower)."""
    for engine in (None, "llama.cpp-cuda"):
        q5 = predict("llama-3.1-8b", "1080-ti", weights="q5_k_m", engine=engine)
        q6 = predict("llama-3.1-8b", "1080-ti", weights="q6_k", engine=engine)
        assert q5.decode.estimate_tok_s > q6.decode.estimate_tok_s
        assert {r.compute_dtype for r in q5.operators if r.name == "lm_head"} == \
            {r.compute_dtype for r in q6.operators if r.name == "lm_head"}


@pytest.mark.parametrize("format_chain", [["f32", "f16", "fp8", "nvfp4"], ["f16", "q8_0", "q4_k_m", "q2_k"]])
def test_format_chains_get_faster(format_chain):
    times = [predict("llama-3.1-8b", "h100", weights=f, gen=8).decode.tpot_floor_ms for f in format_chain]
    assert times == sorted(times, reverse=True)


@given(MODELS, DEVICES, st.integers(1, 64), st.integers(1, 4096), st.integers(1, 512), ENGINES, FORMATS)
def test_ceiling_is_never_below_estimate(model, device, batch, prompt, gen, engine, weights):
    p = predict(model, device, batch=batch, prompt=prompt, gen=gen, engine=engine, weights=weights)
    assert p.decode.ceiling_tok_s >= p.decode.estimate_tok_s
    assert p.decode.ceiling_throughput_tok_s >= p.decode.estimate_throughput_tok_s
    assert p.prefill.ttft_floor_ms <= p.prefill.ttft_ms
    for row in p.operators:
        assert row.ceiling_ms <= row.estimate_ms + 1e-12
    assert p.decode.estimate_low_tok_s <= p.decode.estimate_high_tok_s <= p.decode.ceiling_tok_s * (1 + 1e-12)


@given(MODELS, DEVICES, st.integers(1, 4000), st.integers(1, 4000), ENGINES, FORMATS)
def test_ttft_non_decreasing_in_prompt(model, device, p1, p2, engine, weights):
    assume(p1 < p2)
    a = predict(model, device, prompt=p1, gen=1, engine=engine, weights=weights)
    b = predict(model, device, prompt=p2, gen=1, engine=engine, weights=weights)
    assert a.prefill.ttft_floor_ms <= b.prefill.ttft_floor_ms * (1 + 1e-12)
    assert a.prefill.ttft_ms <= b.prefill.ttft_ms * (1 + 1e-12)


@pytest.mark.parametrize("model", ["llama-3.1-8b", "qwen3-30b-a3b"])
def test_no_jump_where_decode_kernels_once_switched(model):
    """Batch 8 -> 9 and prompt 8 -> 9 crossed the old 8-token unpacking threshold: speed per sequence rose with
    batch (241 -> 266 tok/s) and TTFT fell with prompt."""
    kw = dict(weights="q4_k_m", engine="llama.cpp-cuda")
    assert predict(model, "h100", batch=9, **kw).decode.estimate_tok_s <= \
        predict(model, "h100", batch=8, **kw).decode.estimate_tok_s
    assert predict(model, "h100", prompt=9, **kw).prefill.ttft_ms >= predict(model, "h100", prompt=8, **kw).prefill.ttft_ms


def assert_not_faster(less_work, more_work):
    """Per-sequence decode speed, ceiling and estimate, does not rise with the work per step."""
    assert more_work.decode.ceiling_tok_s <= less_work.decode.ceiling_tok_s * (1 + 1e-12)
    assert more_work.decode.estimate_tok_s <= less_work.decode.estimate_tok_s * (1 + 1e-12)


@given(MODELS, DEVICES, st.integers(1, 128), st.integers(1, 128), ENGINES, FORMATS)
def test_per_sequence_speed_non_increasing_in_batch(model, device, b1, b2, engine, weights):
    assume(b1 < b2)
    assert_not_faster(predict(model, device, batch=b1, gen=8, engine=engine, weights=weights),
                      predict(model, device, batch=b2, gen=8, engine=engine, weights=weights))


@given(MODELS, DEVICES, st.integers(0, 100_000), st.integers(0, 100_000), ENGINES, FORMATS)
def test_per_sequence_speed_non_increasing_in_context(model, device, c1, c2, engine, weights):
    assume(c1 < c2)
    assert_not_faster(predict(model, device, context=c1, gen=4, engine=engine, weights=weights),
                      predict(model, device, context=c2, gen=4, engine=engine, weights=weights))


@given(MODELS, DEVICES, st.integers(1, 256), st.integers(1, 256), ENGINES, FORMATS)
def test_aggregate_throughput_non_decreasing_in_batch_while_it_fits(model, device, b1, b2, engine, weights):
    assume(b1 < b2)
    a = predict(model, device, batch=b1, gen=8, engine=engine, weights=weights)
    b = predict(model, device, batch=b2, gen=8, engine=engine, weights=weights)
    assume(b.memory.fits)
    assert b.decode.ceiling_throughput_tok_s >= a.decode.ceiling_throughput_tok_s * (1 - 1e-9)
    assert b.decode.estimate_throughput_tok_s >= a.decode.estimate_throughput_tok_s * (1 - 1e-9)


@pytest.mark.parametrize("field,value", [("batch", 0), ("batch", -1), ("prompt", 0), ("gen", 0), ("tp", 0),
                                         ("context", -5), ("batch", 1.5)])
def test_zero_or_negative_sizes_refused(field, value):
    with pytest.raises(UserError, match=field):
        predict("llama-3.2-1b", "h100", **{field: value})


def test_result_serialises():
    d = predict("gpt-oss-20b", "h100").to_dict()
    for key in ("model", "hardware", "workload", "decode", "prefill", "memory", "operators"):
        assert key in d
    for key in ("ceiling_tok_s", "estimate_tok_s", "ceiling_throughput_tok_s", "estimate_throughput_tok_s",
                "tpot_floor_ms", "tpot_ms", "bytes_per_step", "flops_per_step", "bound"):
        assert key in d["decode"]
    for key in ("weights_gb", "kv_cache_gb", "total_gb", "fits", "min_devices"):
        assert key in d["memory"]


def test_measured_profile_times_each_matrix_at_its_own_rate(tiny_config, point_rows):
    """With a profile, a matmul takes sum(bytes_i / rate_i) over its matrices. The tiny model's MLP has gate and up
    of 128 x 64 (out/in 2) and down of 64 x 128 (out/in 0.5), 16 KiB each in bf16; the profile streams square
    matrices at 10 GB/s and out/in 4 at 5 GB/s, so out/in 2 runs at sqrt(10 x 5) (log-log interpolation) and 0.5 at
    the squarest measured rate, 10 GB/s: 2 x 16384 / 7.07e9 + 16384 / 10e9 s per layer. The datasheet-style
    estimate (48 KiB at 40 GB/s) is faster and gives way to it."""
    from llm_roofline.architecture import load_model
    from llm_roofline.formats import load_format
    from llm_roofline.hardware import Hardware
    from llm_roofline.timing import Efficiency

    rows = [{"dtype": "bf16", "vectors": 1, "matrix_bytes": 2**20, "aspect": a, "gbps": r} for a, r in ((1.0, 10.0),
                                                                                                         (4.0, 5.0))]
    hw = Hardware.from_record({"id": "p", "name": "p", "category": "desktop_cpu", "memory_gb": 16,
                               "bandwidth_gbps": 40, "peak_tflops": {"bf16": 1.0}, "roofline": rows,
                               "bandwidth": [{"bytes": 2**30, "read_gbps": 40}]})
    spec = load_model(tiny_config)
    matrix = 128 * 64 * 2
    ceiling, estimate = point_rows(spec, load_format("bf16"), 16, hw, Efficiency(1.0, 1.0, 0.0, 0.0, "test"))["mlp"]
    layers = spec.n_layers
    act = (64 + 3 * 128) * 2  # the token in (width 64) and out (params / width = 3 x 128), bf16
    assert ceiling == pytest.approx(layers * (3 * matrix + act) / 40e9)
    assert estimate == pytest.approx(layers * (2 * matrix / (50 ** 0.5 * 1e9) + matrix / 10e9))


def test_unpack_cycles_add_to_quantised_decode_matmuls_only(point_rows):
    """A memory-bound matmul over block-quantised weights takes, on top of its memory time, unpack cycles per weight
    x weights / (SMs x clock); 16-bit weights do not, and a compute-bound one hides it under the multiply."""
    from llm_roofline.architecture import load_model
    from llm_roofline.formats import load_format
    from llm_roofline.ops import Step, step_ops
    from llm_roofline.timing import Efficiency

    hw = load_hardware("4090")
    spec = load_model("llama-2-7b")
    plain = Efficiency(0.8, 0.5, 0.0, 0.0, "test")
    unpack = replace(plain, unpack_cycles_per_weight=0.05)

    def mlp(fmt, eff, batch=1, tokens=1):
        return point_rows(spec, load_format(fmt), 16, hw, eff, batch, tokens)["mlp"][1]

    (q4,) = [o for o in step_ops(spec, load_format("q4_0"), 16, Step(1, 1, 0)) if o.name == "mlp"]
    assert q4.quantized_weights == 3 * 4096 * 11008  # gate, up, down of one layer
    extra = 32 * 0.05 * 3 * 4096 * 11008 / (128 * 2.52e9)  # 32 layers
    assert mlp("q4_0", unpack) == pytest.approx(mlp("q4_0", plain) + extra)
    (f16,) = [o for o in step_ops(spec, load_format("f16"), 16, Step(1, 1, 0)) if o.name == "mlp"]
    assert f16.quantized_weights == 0 and mlp("f16", unpack) == mlp("f16", plain)
    (fp8,) = [o for o in step_ops(spec, load_format("fp8"), 16, Step(1, 1, 0)) if o.name == "mlp"]
    assert fp8.quantized_weights == 0  # fp8 goes to the tensor cores as it is
    # a prefill-sized multiply is compute-bound: the unpacking overlaps with it (timing.DeviceStep.sides)
    assert mlp("q4_0", unpack, 1, 512) == mlp("q4_0", plain, 1, 512)
    # at 16 tokens the multiply is still memory-bound: the unpacking is paid, as at one token (no threshold)
    assert mlp("q4_0", unpack, 16) == pytest.approx(mlp("q4_0", plain, 16) + extra)


def test_prediction_shows_the_device_inputs_of_the_estimate():
    hw = predict("llama-3.1-8b", "3060", weights="q4_k_m", engine="llama.cpp-cuda").to_dict()["hardware"]
    assert hw["memory_type"] == "GDDR6"
    assert hw["sm_cycles_per_s"] == pytest.approx(28 * 1.777e9)  # 28 SMs x 1777 MHz
    assert hw["quantized_matmul_tops"] == pytest.approx(101.9)  # the int8 peak: 2048 ops x 28 SMs x 1.777 GHz


def test_moe_ceiling_reads_the_fewest_experts_a_batch_can_touch():
    import llm_roofline as lr

    """Qwen3-30B-A3B: 48 layers of 128 experts, 8 per token, each 3 x 2048 x 768 weights. However 16 sequences
    route, each layer reads at least the 8 experts every token picks: the ceiling's weights are batch 1's. The
    estimate reads the uniform-routing expectation, 128 (1 - (1 - 8/128)^16) = 82.4 experts per layer."""
    one = lr.predict("qwen3-30b-a3b", "h100", batch=1)
    many = lr.predict("qwen3-30b-a3b", "h100", batch=16)
    per_expert = 3 * 2048 * 768 * 2  # bf16
    experts = {r.name: r for r in many.operators if r.phase == "decode"}["moe_experts"]
    assert experts.weight_bytes == pytest.approx(48 * 128 * (1 - (1 - 8 / 128) ** 16) * per_expert, rel=1e-9)
    others_one = one.decode.bytes_per_step - one.decode.weight_bytes_per_step  # KV and activations
    others_many = many.decode.bytes_per_step - many.decode.weight_bytes_per_step
    floor_weights = one.decode.weight_bytes_per_step  # batch 1 touches exactly 8 experts per layer
    embedding_rows = 15 * 2048 * 2  # the 15 more tokens' embedding rows
    assert many.decode.ceiling_bytes_per_step == pytest.approx(floor_weights + embedding_rows + others_many, rel=1e-9)
    assert one.decode.ceiling_bytes_per_step == pytest.approx(floor_weights + others_one, rel=1e-9)
    assert many.decode.ceiling_bytes_per_step < many.decode.bytes_per_step
    assert many.decode.estimate_high_tok_s <= many.decode.ceiling_tok_s
    assert any("fewest experts" in n for n in many.notes)


def test_zipf_routing_skew():
    """Skew 0 is uniform routing; a steep skew concentrates tokens on the k most popular experts; any skew leaves
    the ceiling (the fewest experts) alone and never makes the estimate slower than uniform."""
    import numpy as np

    import llm_roofline as lr
    from llm_roofline.step import _inclusion, expected_experts

    assert expected_experts(128, 8, 16, 0.0) == pytest.approx(128 * (1 - (1 - 8 / 128) ** 16))
    q = _inclusion(4, 2, 20.0)
    assert q.sum() == pytest.approx(2) and q.max() <= 1 and q[:2] == pytest.approx([1, 1], abs=1e-3)
    assert expected_experts(4, 2, np.array([1.0, 50.0]), 20.0) == pytest.approx([2, 2], abs=0.05)
    uniform = lr.predict("qwen3-30b-a3b", "h100", batch=16)
    skewed = lr.predict("qwen3-30b-a3b", "h100", batch=16, routing_skew=1.0)
    assert skewed.decode.ceiling_tok_s == pytest.approx(uniform.decode.ceiling_tok_s, rel=1e-12)
    assert uniform.decode.estimate_tok_s < skewed.decode.estimate_tok_s <= skewed.decode.ceiling_tok_s
    assert any("Zipf-skewed routing" in n for n in skewed.notes)
    with pytest.raises(UserError):
        lr.predict("qwen3-30b-a3b", "h100", routing_skew=-1)
