"""measure / bench on the CPU: sane figures, a profile that works as a device, and one-line errors."""

import json

import pytest

torch = pytest.importorskip("torch")

from llm_roofline import load_hardware, predict  # noqa: E402
from llm_roofline.cli import main  # noqa: E402
from llm_roofline.errors import UserError  # noqa: E402
from llm_roofline.measure import device as device_mod  # noqa: E402
from llm_roofline.measure import micro  # noqa: E402


@pytest.fixture(scope="module")
def profile_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("profile") / "cpu.json"
    assert main(["measure", "--device", "cpu", "--quick", "--out", str(path), "--json"]) == 0
    return path


def test_quick_profile_is_sane(profile_path):
    p = json.loads(profile_path.read_text())
    assert p["bandwidth_gbps"] > 1 and p["bandwidth_spread_gbps"][0] <= p["bandwidth_gbps"] * 1.001
    assert p["peak_tflops"]["fp32"] > 0.005 and p["ridge_point_flop_per_byte"] > 0
    sizes = [r["bytes"] for r in p["bandwidth"]]
    assert sizes == sorted(sizes) and sizes[-1] >= 256 * 2**20
    # the largest buffer is at least the last-level cache (or 1/6 of free memory): DRAM, not cache
    assert sizes[-1] >= min(p["machine"]["last_level_cache_bytes"], 1 << 30) or sizes[-1] >= 256 * 2**20
    fp32 = [r for r in p["roofline"] if r["dtype"] == "fp32"]
    assert {r["aspect"] for r in fp32} == {0.25, 1.0, 4.0, 16.0}  # wide, square, tall and very tall matrices
    for r in fp32:
        assert r["out_features"] * r["in_features"] * 4 == r["matrix_bytes"]
        assert r["out_features"] / r["in_features"] == pytest.approx(r["aspect"])
    for shape in {(r["matrix_bytes"], r["aspect"]) for r in fp32}:  # more vectors per weight read: more FLOP/B
        intensities = [r["intensity_flop_per_byte"] for r in fp32 if (r["matrix_bytes"], r["aspect"]) == shape]
        assert intensities == sorted(intensities) and intensities[0] < 1 < intensities[-1]
    assert all(r["gflops"] > 0 and r["gbps"] > 0 for r in p["roofline"])
    assert p["step_overhead_us"] >= 0 and p["layer_overhead_us"] >= 0 and p["dispatch_overhead_us"]["median"] > 0
    for key in ("date", "cpu_model", "cpu_cores", "torch", "platform"):
        assert p["machine"][key]


def test_profile_is_a_device(profile_path, capsys):
    hw = load_hardware(profile_path)
    assert hw.measured and hw.bandwidth_curve and hw.matmul_curves
    p = predict("qwen2.5-0.5b", profile_path, weights="f32", gen=8)
    # the ceiling streams the step's bytes at the measured read rate for that working set
    rate = hw.bandwidth_at(p.decode.bytes_per_step) * 1e9
    assert p.decode.ceiling_tok_s == pytest.approx(rate / p.decode.bytes_per_step, rel=0.05)
    assert p.decode.estimate_tok_s < p.decode.ceiling_tok_s
    assert "measured profile" in p.efficiency.source
    assert main(["predict", "qwen2.5-0.5b", "--hardware", str(profile_path), "--json"]) == 0
    capsys.readouterr()
    assert main(["hardware", "show", str(profile_path)]) == 0
    out = capsys.readouterr().out
    assert "closest catalog device" in out


def test_bench_tiny_model(profile_path):
    pytest.importorskip("transformers")
    from llm_roofline.measure.bench import bench

    result = bench("smollm2-135m", "cpu", "bf16", (1, 2), prompt=8, gen=4, hardware=profile_path, repeats=1)
    assert "random weights" in result["weights_source"]
    for row in result["rows"]:
        assert row["measured_tok_s"] > 0 and row["estimate_tok_s"] > 0 and row["ceiling_tok_s"] > 0
        assert 0 < row["mbu"] <= 1.2
        assert row["measured_throughput_tok_s"] == pytest.approx(row["batch"] * row["measured_tok_s"])
        assert row["error_pct"] == pytest.approx(100 * (row["estimate_tok_s"] - row["measured_tok_s"])
                                                 / row["measured_tok_s"])
        # the read rate beside the row is the profile's kind of figure (GB/s of the same buffer), however the
        # machine drifts: not bytes, not seconds, not a cache-resident rate
        assert 0.2 < row["read_gbps_after"] / result["bandwidth_gbps"] < 5
    assert isinstance(result["warnings"], list)


def test_drift_warning_by_hand():
    from llm_roofline.measure.bench import drift_warnings

    assert drift_warnings(30.0, [27.0, 33.0]) == []  # -10% and +10%: within 15%
    assert drift_warnings(30.0, [25.8, 34.2]) == []  # -14% and +14%
    (line,) = drift_warnings(30.0, [27.0, 36.0])  # +20%
    assert "-10% to +20%" in line and "30.0 GB/s" in line
    (line,) = drift_warnings(40.0, [30.0])  # -25%
    assert "read -25% off" in line


def test_read_now_streams_the_bytes_it_says_and_keeps_the_callers_random_stream(monkeypatch):
    monkeypatch.setattr(micro, "_large_buffer_bytes", lambda device, cap: 16 * micro.MIB)
    monkeypatch.setattr(micro, "time_it", lambda fn, device, repeats: device_mod.Timing(0.002, 0.001, 0.004, repeats))
    torch.manual_seed(7)
    want = torch.rand(4)
    torch.manual_seed(7)
    gbps = micro.read_gbps_now("cpu")
    assert torch.equal(torch.rand(4), want)
    assert gbps == pytest.approx(16 * micro.MIB / 0.002 / 1e9)  # 16 MiB in the 2 ms median


def test_bench_json_contract(profile_path, capsys):
    pytest.importorskip("transformers")
    assert main(["bench", "smollm2-135m", "--device", "cpu", "--weights", "bf16", "--batch", "1", "--prompt", "4",
                 "--gen", "3", "--repeats", "1", "-H", str(profile_path), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)["rows"][0]
    for key in ("batch", "measured_tok_s", "measured_throughput_tok_s", "estimate_tok_s", "ceiling_tok_s",
                "error_pct", "mbu", "ttft_ms", "tpot_ms"):
        assert key in row


@pytest.mark.parametrize("args,fragment", [
    (["measure", "--device", "tpu"], "unknown device"),
    (["measure", "--out", "profile.txt"], ".json"),
    (["bench", "smollm2-135m", "--weights", "q4_0", "--device", "cpu"], "--weights must be"),
    (["bench", "smollm2-135m", "--batch", "x", "--device", "cpu"], "--batch"),
])
def test_bad_input(capsys, args, fragment):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1


def test_cuda_refused_without_a_gpu(capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(["measure", "--device", "cuda"]) == 2
    assert "no CUDA device" in capsys.readouterr().err


def test_model_too_large_refused_before_allocating(profile_path, capsys):
    pytest.importorskip("transformers")
    assert main(["bench", "llama-3.1-405b", "--device", "cpu", "-H", str(profile_path)]) == 2
    assert "needs about" in capsys.readouterr().err


def test_checkpoint_dir_without_weights_refused(profile_path, tiny_config, capsys):
    assert main(["bench", str(tiny_config.parent), "--device", "cpu", "-H", str(profile_path)]) == 2
    assert "safetensors" in capsys.readouterr().err


def test_numpy_path_without_torch(monkeypatch):
    monkeypatch.setattr(micro, "torch_or_none", lambda: None)
    monkeypatch.setattr(micro, "last_level_cache_bytes", lambda: 1 << 20)
    monkeypatch.setattr(micro, "available_memory_bytes", lambda device: 48 << 20)
    be = micro.Backend("cpu")
    assert be.name.startswith("numpy") and be.dtypes() == ["fp32"]
    rows = micro.bandwidth_sweep(be, quick=True)
    assert rows and all(r["read_gbps"] > 0 and r["copy_gbps"] > 0 for r in rows)
    assert micro.matmul_peaks(be, quick=True)["fp32"]["tflops"] > 0


def test_resolve_device(monkeypatch):
    assert device_mod.resolve_device("cpu") == "cpu"
    monkeypatch.setattr(device_mod, "torch_or_none", lambda: None)
    assert device_mod.resolve_device("auto") == "cpu"
    with pytest.raises(UserError, match="needs PyTorch"):
        device_mod.resolve_device("cuda")


def test_sweep_on_a_measured_profile_equals_predict(profile_path):
    """A measured profile's bandwidth follows the working set, so sweep evaluates every workload in full."""
    import numpy as np

    from llm_roofline import compile, sweep
    from llm_roofline.factored import factor

    assert factor(compile("qwen2.5-0.5b", profile_path, weights="f32")) is None
    s = sweep("qwen2.5-0.5b", profile_path, weights="f32", batch=np.array([1, 4])[:, None], context=[64, 2048], gen=8)
    for i, b in enumerate((1, 4)):
        for j, ctx in enumerate((64, 2048)):
            p = predict("qwen2.5-0.5b", profile_path, weights="f32", batch=b, context=ctx, gen=8)
            assert s.tpot_ms[i, j] == pytest.approx(p.decode.tpot_ms, rel=1e-9)
            assert s.ttft_ms[i, j] == pytest.approx(p.prefill.ttft_ms, rel=1e-9)


def test_noisy_repeats_are_warned_about():
    from llm_roofline.measure.micro import noise_warnings

    quiet = noise_warnings({"read_min_gbps": 30.0, "read_max_gbps": 32.0}, {"fp32": {"min_tflops": 1.0,
                                                                                    "max_tflops": 1.05}})
    busy = noise_warnings({"read_min_gbps": 12.0, "read_max_gbps": 30.0}, {"fp32": {"min_tflops": 0.4,
                                                                                   "max_tflops": 1.0}})
    assert quiet == [] and len(busy) == 2 and "busy" in busy[0]


def test_profile_carries_its_warnings(profile_path):
    p = json.loads(profile_path.read_text())
    assert isinstance(p["warnings"], list)


def test_acceptance_from_tokens_per_round_by_hand():
    from llm_roofline.measure.spec_bench import acceptance_from_rounds

    # k = 4: a = 0.5 gives 1 + 0.5 + 0.25 + 0.125 + 0.0625 = 1.9375 tokens per round
    assert acceptance_from_rounds(1.9375, 4) == pytest.approx(0.5, abs=1e-9)
    assert acceptance_from_rounds(5.0, 4) == pytest.approx(1.0, abs=1e-9)
    assert acceptance_from_rounds(1.0, 4) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(UserError):
        acceptance_from_rounds(6.0, 4)


@pytest.mark.parametrize("seed,want", [(0, 1.0), (1, 0.0)])
def test_bench_draft_measures_the_acceptance_it_predicts_with(profile_path, seed, want):
    """The target drafting for itself accepts every token; an unrelated model of the same shapes about none.
    Either way the prediction uses the measured acceptance and keeps the physics' sign: a same-size draft never
    pays."""
    pytest.importorskip("transformers")
    from llm_roofline.measure.spec_bench import bench_speculative

    r = bench_speculative("smollm2-135m", "smollm2-135m", "cpu", "f32", prompt=4, gen=10, draft_tokens=3,
                          hardware=profile_path, repeats=1, draft_seed=seed)
    assert r["acceptance"] == pytest.approx(want, abs=0.15)
    assert r["predicted_speedup"] < 1 and r["measured_speedup"] > 0
    assert r["assisted_predicted_tok_s"] == pytest.approx(r["plain_measured_tok_s"] * r["predicted_speedup"])


def test_bench_draft_refuses_batches_and_other_vocabularies(profile_path, capsys):
    assert main(["bench", "smollm2-135m", "--draft", "smollm2-135m", "--batch", "2", "--device", "cpu", "-H",
                 str(profile_path)]) == 2
    assert "batch 1" in capsys.readouterr().err
    assert main(["bench", "smollm2-135m", "--draft", "qwen2.5-0.5b", "--device", "cpu", "-H", str(profile_path)]) == 2
    assert "vocabulary" in capsys.readouterr().err


def test_reference_decoders_stream_from_memory_and_their_line_is_non_negative(profile_path):
    """The reference decoder's layer: q 512x512, k and v 512x128, o 512x512, MLP 3 x 512x1536 = 3,014,656
    weights, 12,058,624 bytes in f32. Twice a 32 MiB cache is 5.6 layers: 6 and 18 layers (bf16: 12 and 36)."""
    assert micro.reference_layers(4, 32 * 2**20) == (6, 18)
    assert micro.reference_layers(2, 32 * 2**20) == (12, 36)
    assert micro.reference_layers(2, 2**20) == (2, 6)  # at least two layers
    # the line through (2, 3.0 s) and (8, 6.0 s): 0.5 s per layer, 2 s per step
    assert micro.per_layer_and_step({2: 3.0, 8: 6.0}) == pytest.approx((0.5, 2.0))
    # through (2, 1) and (8, 9) the free line's intercept is -1.67: the fit through the origin instead,
    # (2 x 1 + 8 x 9) / (2^2 + 8^2) = 74 / 68 per layer, nothing per step
    assert micro.per_layer_and_step({8: 9.0, 2: 1.0}) == pytest.approx((74 / 68, 0.0))
    used = json.loads(profile_path.read_text())["decoder_overhead"]["reference_layers"]
    llc = json.loads(profile_path.read_text())["machine"]["last_level_cache_bytes"]
    assert used == {"f32": list(micro.reference_layers(4, llc)), "bf16": list(micro.reference_layers(2, llc))}
