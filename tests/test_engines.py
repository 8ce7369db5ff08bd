"""Engine profiles: which decode steps replay a captured graph, and what the estimate takes from a profile."""

from dataclasses import replace

import pytest

from llm_roofline.engines import efficiency_for, replays_graph, shipped_profiles
from llm_roofline.formats import load_format
from llm_roofline.hardware import load_hardware


@pytest.mark.parametrize("engine,device,build,graphs", [
    # llama.cpp CUDA: graphs from PR #6766 (2024-05-08) on compute capability >= 8.0 ...
    ("llama.cpp-cuda", "4090", "2024-05", False),  # a May build counts as before the merge
    ("llama.cpp-cuda", "4090", "2024-06", True),
    ("llama.cpp-cuda", "a100", "2023-11", False),
    ("llama.cpp-cuda", "a100", "2025", True),
    ("llama.cpp-cuda", "4090", "", True),  # no date: a current build
    # ... and on Volta / Turing (7.x) only from PR #25749 (2026-07); never on Pascal
    ("llama.cpp-cuda", "t4", "2025", False),
    ("llama.cpp-cuda", "v100", "2026-08", True),
    ("llama.cpp-cuda", "t4", "", True),
    ("llama.cpp-cuda", "nvidia-gtx-1080-ti", "", False),
    # other llama.cpp backends launch kernel by kernel; other engines' per-step cost is one fitted number
    ("llama.cpp-metal", "m2-ultra", "", False),
    ("llama.cpp-vulkan", "4090", "2025", False),
    ("llama.cpp-rocm", "mi300x", "", False),
    ("vllm", "t4", "2023-11", True),
    ("gpt-fast", "a100", "", True),
])
def test_which_decode_steps_replay_a_graph(engine, device, build, graphs):
    assert replays_graph(engine, load_hardware(device), build) is graphs


def test_compute_capability_is_in_the_catalog():
    assert load_hardware("4090").compute_capability == 8.9
    assert load_hardware("t4").compute_capability == 7.5
    assert load_hardware("nvidia-tesla-p100-pcie-16gb").compute_capability == 6.0
    assert load_hardware("mi300x").compute_capability is None


def test_launch_cost_per_layer_joins_the_step_overhead_only_without_graphs():
    """step overhead = the profile's fixed part + launch_us_per_layer x layers where kernels are launched one by
    one: 250 + 40 x 32 = 1530 µs for a 32-layer model on a Pascal card, 250 µs on an Ada card."""
    profiles = {k: replace(v, step_overhead_us=250.0, launch_us_per_layer=40.0)
                for k, v in shipped_profiles()[0].items()}
    q4 = load_format("q4_0")
    pascal = efficiency_for("llama.cpp-cuda", q4, load_hardware("nvidia-gtx-1080-ti"), profiles, n_layers=32)
    ada = efficiency_for("llama.cpp-cuda", q4, load_hardware("4090"), profiles, n_layers=32)
    assert pascal.step_overhead_us == pytest.approx(1530.0)
    assert "40 µs x 32 layers" in pascal.source
    assert ada.step_overhead_us == pytest.approx(250.0)
    old = efficiency_for("llama.cpp-cuda", q4, load_hardware("4090"), profiles, n_layers=80, build_date="2024-01")
    assert old.step_overhead_us == pytest.approx(250.0 + 40 * 80)


def test_predict_counts_the_model_layers_in_the_launch_cost():
    from llm_roofline import predict

    profile = shipped_profiles()[0]["llama.cpp-cuda"]
    assert profile.launch_us_per_layer > 0  # fitted on rows that launch kernel by kernel (Pascal, 2024 builds)
    p = predict("llama-2-7b", "nvidia-gtx-1080-ti", weights="q4_0", engine="llama.cpp-cuda")
    assert p.efficiency.step_overhead_us == pytest.approx(profile.step_overhead_us + 32 * profile.launch_us_per_layer)


def test_a_device_without_compute_capability_is_taken_as_recent():
    from llm_roofline.hardware import Hardware

    hw = Hardware(id="row:GPU", name="GPU", category="consumer_gpu", memory_gb=8, bandwidth_gbps=500, peak_tflops={})
    assert [replays_graph("llama.cpp-cuda", hw, d) for d in ("", "2024-05", "2025")] == [True, False, True]


def test_every_range_contains_its_estimate():
    from llm_roofline.engines import speed_range

    ranges = {"vllm": {"decode": [0.2, 0.66]}, "default": {"prefill": [1.2, 1.5]}}
    assert speed_range("vllm", "decode", ranges) == (0.2, 1.0)
    assert speed_range("vllm", "prefill", ranges) == (1.0, 1.5)
    import llm_roofline as lr

    for engine in (None, "vllm", "llama.cpp-metal", "tensorrt-llm"):
        p = lr.predict("llama-3.1-8b", "h100", engine=engine)
        assert p.decode.estimate_low_tok_s <= p.decode.estimate_tok_s <= p.decode.estimate_high_tok_s
        assert p.prefill.ttft_low_ms <= p.prefill.ttft_ms <= p.prefill.ttft_high_ms


def test_llama_cpp_backends_other_than_cuda_fall_back_to_the_default_not_to_cuda():
    """Metal, Vulkan and ROCm run other kernels than llama.cpp's CUDA ones: without a profile of their own they take
    the all-engine default, never the CUDA-fitted llama.cpp family; all of them are still llama.cpp."""
    from llm_roofline.engines import Profile, family, is_llama_cpp, lookup, project

    default = Profile(0.5, 0.5, 100.0, 5.0, 0.3, 100.0, 5.0, 1.0, 1.0)
    cuda = Profile(0.9, 0.3, 900.0, 5.0, 0.3, 100.0, 5.0, 1.0, 1.0)
    profiles = {"default": default, "llama.cpp": cuda}
    assert lookup(profiles, "llama.cpp-cuda") == ("llama.cpp", cuda)
    for backend in ("llama.cpp-metal", "llama.cpp-vulkan", "llama.cpp-rocm"):
        assert family(backend) == backend
        assert lookup(profiles, backend) == ("default", default)
        assert project(backend) == "llama.cpp" and is_llama_cpp(backend)
    assert project("nim") == project("tensorrt-llm") == "tensorrt" and not is_llama_cpp("vllm")


def test_quantised_weights_without_an_engine_pay_the_fitted_dequantisation():
    """No engine: the class defaults (80% of bandwidth on an A100) plus what the all-engine fit says every decode
    kernel pays to unpack block-quantised weights: its bandwidth factor for the bit class and its SM cycles per
    weight over the A100's 108 SMs x 1410 MHz. 16-bit weights pay nothing extra."""
    import llm_roofline as lr

    default = shipped_profiles()[0]["default"]

    def mlp(weights):
        (op,) = [o for o in lr.predict("llama-2-7b", "a100", weights=weights).to_dict()["operators"]
                 if o["phase"] == "decode" and o["name"] == "mlp"]
        return op

    f16 = mlp("f16")
    assert f16["estimate_ms"] == pytest.approx(f16["ceiling_ms"] / 0.8)
    q4 = mlp("q4_0")
    unpack_ms = 32 * default.unpack_cycles_per_weight * 3 * 4096 * 11008 / (108 * 1410e6) * 1e3
    assert default.unpack_cycles_per_weight > 0
    assert q4["estimate_ms"] == pytest.approx(q4["ceiling_ms"] / (0.8 * default.bw_factor_4bit) + unpack_ms)
    q8 = mlp("q8_0")
    assert q8["estimate_ms"] == pytest.approx(q8["ceiling_ms"] / (0.8 * default.bw_factor_8bit) + unpack_ms)
