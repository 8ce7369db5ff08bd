"""The measurement reader, per-row prediction, the report, and the validate / calibrate commands."""

import csv
import json

import pytest

from llm_roofline import catalog
from llm_roofline.cli import main
from llm_roofline.errors import UserError
from llm_roofline.validate import read_measurements, row_model, summarize, validate, RowResult

HEADER = ["source", "engine", "hardware", "hardware_id", "bandwidth_gbps", "fp16_tflops", "memory_gb", "devices",
          "parallel", "model", "weights", "kv_cache", "batch", "prompt_tokens", "kv_depth", "gen_tokens", "metric",
          "value", "flash_attention", "notes"]
GOOD = {"source": "me/bench README", "engine": "llama.cpp-cuda", "hardware": "NVIDIA RTX 4090",
        "hardware_id": "nvidia-rtx-4090", "bandwidth_gbps": "1008", "fp16_tflops": "165.2", "memory_gb": "24",
        "devices": "1", "parallel": "none", "model": "llama-2-7b", "weights": "q4_0", "kv_cache": "f16", "batch": "1",
        "prompt_tokens": "0", "kv_depth": "0", "gen_tokens": "128", "metric": "decode_tok_s", "value": "150",
        "flash_attention": "no", "notes": ""}


def write_csv(path, rows, header=HEADER):
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=header, extrasaction="ignore")
        w.writeheader()
        for row in rows:
            w.writerow(row)
    return path


def test_missing_columns_named(tmp_path):
    path = write_csv(tmp_path / "m.csv", [GOOD], header=[h for h in HEADER if h not in ("model", "value")])
    with pytest.raises(UserError, match="missing column.*model.*value"):
        read_measurements(path)


@pytest.mark.parametrize("field,value,reason", [
    ("model", "llama-2-7", "closest: llama-2-7b"),
    ("weights", "q4km", "weight format"),
    ("batch", "many", "batch 'many' is not a number"),
    ("batch", "1.5", "not a whole number"),
    ("value", "-3", "out of range"),
    ("metric", "tokens", "unknown metric"),
    ("parallel", "pipeline", "parallel must be"),
    ("kv_cache", "q9", "KV-cache format"),
])
def test_bad_rows_are_skipped_with_a_reason(tmp_path, field, value, reason):
    path = write_csv(tmp_path / "m.csv", [GOOD, {**GOOD, field: value}])
    rows, skipped = read_measurements(path)
    assert len(rows) == 1 and len(skipped) == 1
    assert skipped[0].line == 3 and reason in skipped[0].reason


def test_empty_cells_take_stated_defaults(tmp_path):
    path = write_csv(tmp_path / "m.csv", [{**GOOD, "gen_tokens": "", "kv_cache": ""},
                                          {**GOOD, "bandwidth_gbps": "", "hardware_id": ""}])
    rows, skipped = read_measurements(path)
    assert "kv_cache f16" in rows[0].defaults_used and any("steady decode" in d for d in rows[0].defaults_used)
    assert "bandwidth" in skipped[0].reason


def test_ceiling_of_a_row_by_hand(tmp_path):
    # Llama-2-7B Q4_0 on a 4090, 1 token from an empty cache: per step the 3.69e9 bytes of layer weights and
    # Q6_K output read at 1008 GB/s (see test_ops / test_formats for the byte counts), KV negligible.
    path = write_csv(tmp_path / "m.csv", [{**GOOD, "gen_tokens": "1"}])
    (m,), _ = read_measurements(path)
    from llm_roofline import predict

    p = predict("llama-2-7b", "4090", weights="q4_0", prompt=1, context=0, gen=1)
    from llm_roofline.calibrate import RowSet

    assert RowSet([row_model(m)]).ceilings()[0] == pytest.approx(p.decode.ceiling_tok_s, rel=1e-6)


def test_violation_detected_and_listed(tmp_path):
    path = write_csv(tmp_path / "m.csv", [GOOD, {**GOOD, "value": "1000"}])  # 1000 tok/s > ~265 ceiling
    report = validate([path])
    assert [r.line for r in report.violations] == [3]
    assert report.summary["decode_tok_s"].ceiling_violations == 1


def test_summary_statistics():
    rows = [RowResult(i, "", "e", "", "", "", "decode_tok_s", 1, 100.0, 200.0, 100.0 + e, 0, 0, e, False, "", ())
            for i, e in enumerate([-10.0, 5.0, 20.0, -30.0, 0.0])]
    s = summarize(rows)
    assert s.n == 5 and s.median_abs_error_pct == 10.0 and s.bias_pct == 0.0
    assert s.p90_abs_error_pct == pytest.approx(26.0)  # numpy linear interpolation between 20 and 30


def test_shipped_data_has_no_ceiling_violation_and_lists_skips():
    report = validate()
    assert len(report.rows) + len(report.skipped) == 747
    assert report.violations == []
    assert all(s.reason for s in report.skipped)


def test_validate_json_contract(capsys, tmp_path):
    path = write_csv(tmp_path / "m.csv", [GOOD, {**GOOD, "model": "nope"}])
    code = main(["validate", "--data", str(path), "--json", "--by", "engine"])
    d = json.loads(capsys.readouterr().out)
    assert code == 0
    s = d["summary"]["decode_tok_s"]
    assert {"n", "median_abs_error_pct", "p90_abs_error_pct", "bias_pct", "ceiling_violations"} <= s.keys()
    assert {"measured", "ceiling", "estimate", "error_pct"} <= d["rows"][0].keys()
    assert d["skipped"][0]["line"] == 3 and "unknown model" in d["skipped"][0]["reason"]
    assert "llama.cpp-cuda" in d["groups"]


def test_validate_plot_and_bad_input(capsys, tmp_path):
    path = write_csv(tmp_path / "m.csv", [GOOD, {**GOOD, "batch": "4", "value": "120"}])
    out = tmp_path / "v.png"
    assert main(["validate", "--data", str(path), "--plot", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()
    assert main(["validate", "--data", str(tmp_path / "missing.csv")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["validate", "--by", "colour"]) == 2
    assert "--by" in capsys.readouterr().err


def test_calibrate_then_validate_with_the_profiles(capsys, tmp_path):
    # A small slice of the shipped data from three sources keeps the fit quick.
    with catalog.MEASUREMENTS_CSV.open() as fh:
        rows = list(csv.DictReader(fh))
    picked = [r for r in rows if "gpt-fast" in r["source"]][:12] + \
        [r for r in rows if "15013" in r["source"]][:12] + [r for r in rows if "exllamav2 README" in r["source"]][:10]
    data = write_csv(tmp_path / "slice.csv", picked, header=list(rows[0].keys()))
    out = tmp_path / "profiles.json"
    assert main(["calibrate", "--data", str(data), "--out", str(out)]) == 0
    saved = json.loads(out.read_text())
    assert {"default", "gpt-fast", "llama.cpp-cuda"} <= saved["profiles"].keys()
    assert saved["meta"]["rows_used"] == 34 and len(saved["meta"]["sources"]) == 3
    for p in saved["profiles"].values():
        assert 0 < p["bandwidth_efficiency"] <= 1 and p["step_overhead_us"] >= 0
    capsys.readouterr()
    assert main(["validate", "--data", str(data), "--profiles", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["summary"]["decode_tok_s"]["median_abs_error_pct"] < 30
    assert main(["calibrate", "--data", str(data), "--out", str(tmp_path / "p.txt")]) == 2


def test_predict_with_engine_profile_and_range():
    from llm_roofline import predict

    p = predict("llama-3.1-8b", "4090", weights="q4_k_m", engine="llama.cpp-cuda")
    assert "llama.cpp-cuda" in p.efficiency.source
    d = p.decode
    assert d.estimate_low_tok_s <= d.estimate_high_tok_s <= d.ceiling_tok_s
    assert p.prefill.ttft_floor_ms <= p.prefill.ttft_low_ms <= p.prefill.ttft_high_ms
    # an unknown engine falls back along its family, and an unknown family is refused
    assert "llama.cpp" in predict("llama-3.1-8b", "4090", engine="llama.cpp-sycl").efficiency.source
    with pytest.raises(UserError, match="closest"):
        predict("llama-3.1-8b", "4090", engine="vlm")


def synthetic_row(engine: str, model: str, hid: str, bandwidth: str, **cells) -> dict:
    """A row of a synthetic engine on a catalog device (a source per engine and model: a level informed by one
    source is shrunk toward its parent); decode of one token unless told."""
    return {**GOOD, "source": f"{engine}/{model} README", "engine": engine, "model": model, "hardware_id": hid,
            "bandwidth_gbps": bandwidth, "fp16_tflops": "", "memory_gb": "80", "gen_tokens": "1", **cells}


def fit_synthetic(tmp_path, rows: list[dict], measured, header=HEADER) -> dict:
    """Profiles fitted on `rows` whose values are measured(row, measurement, ceiling, hbm): a known law."""
    from llm_roofline.calibrate import RowSet, fit_profiles

    (got, _) = read_measurements(write_csv(tmp_path / "m.csv", rows, header))
    rowset = RowSet([row_model(m) for m in got])
    for row, m, ceiling, hbm in zip(rows, got, rowset.ceilings(), rowset.hbm):
        row["value"] = f"{measured(row, m, ceiling, hbm):.6g}"
    (got, _) = read_measurements(write_csv(tmp_path / "m.csv", rows, header))
    return fit_profiles(RowSet([row_model(m) for m in got]))


def test_format_factor_is_learnt_within_engines(tmp_path):
    """Engine A (90% of bandwidth) mostly runs 4-bit weights, engine B (50%) mostly 16-bit; 4-bit kernels
    reach 0.7 of an engine's 16-bit efficiency. Pooled across engines, 4-bit would look faster than 16-bit;
    fitted within each engine, the factor is 0.7 and the engines' efficiencies come back."""
    devices = [("nvidia-rtx-4090", "1008"), ("nvidia-rtx-3090", "936.2"), ("nvidia-a100-sxm4-80gb", "2039"),
               ("nvidia-l40s", "864"), ("nvidia-h100-sxm5-80gb", "3350")]
    rows = []
    for engine, main_fmt, other_fmt in (("enga", "q4_0", "f16"), ("engb", "f16", "q4_0")):
        rows += [synthetic_row(engine, model, hid, bw, weights=main_fmt)
                 for model in ("llama-2-7b", "llama-2-13b") for hid, bw in devices]
        rows += [synthetic_row(engine, "llama-2-7b", hid, bw, weights=other_fmt) for hid, bw in devices[:2]]
    efficiency = {"enga": 0.9, "engb": 0.5}
    profiles = fit_synthetic(tmp_path, rows, lambda row, m, ceiling, hbm:
                             ceiling * efficiency[row["engine"]] * (0.7 if row["weights"] == "q4_0" else 1.0))
    assert profiles["enga"].bw_factor_4bit == pytest.approx(0.7, abs=0.03)
    assert profiles["enga"].bandwidth_efficiency == pytest.approx(0.9, abs=0.03)
    assert profiles["engb"].bandwidth_efficiency == pytest.approx(0.5, abs=0.03)


def test_build_date_picks_llama_cpp_cuda_kernel_path(tmp_path):
    """Before 2024-06 llama.cpp's CUDA backend dequantised q4_0 to fp16 for cuBLAS on tensor-core GPUs; since then
    int8 MMQ. A row without a date is taken as a current build."""
    prefill = {**GOOD, "metric": "prefill_tok_s", "prompt_tokens": "512", "gen_tokens": "0", "value": "10000"}
    header = [*HEADER, "build_date"]
    rows = [{**prefill, "build_date": "2024-05"}, {**prefill, "build_date": "2024-07"}, {**prefill, "build_date": ""},
            {**prefill, "build_date": "May 2024"}]
    got, skipped = read_measurements(write_csv(tmp_path / "m.csv", rows, header=header))
    old, new, undated = (row_model(m).prefill for m in got)
    assert not old.int8.any() and new.int8.any() and undated.int8.any()
    assert len(skipped) == 1 and "build_date 'May 2024' is not YYYY-MM" in skipped[0].reason


def test_hbm_factor_applies_on_hbm_devices_only():
    from dataclasses import replace

    from llm_roofline.engines import efficiency_for, shipped_profiles
    from llm_roofline.formats import load_format
    from llm_roofline.hardware import load_hardware

    profiles = {k: replace(v, bw_factor_hbm=0.5) for k, v in shipped_profiles()[0].items()}
    f16 = load_format("f16")
    gddr = efficiency_for("llama.cpp-cuda", f16, load_hardware("4090"), profiles)
    hbm = efficiency_for("llama.cpp-cuda", f16, load_hardware("a100"), profiles)
    assert hbm.bandwidth == pytest.approx(gddr.bandwidth * 0.5)


def test_hbm_factor_is_recovered_per_engine_and_not_given_to_the_default(tmp_path):
    """Engine A's decode reaches 80% of GDDR bandwidth and 0.6 x that on HBM; engine B 70% on both. The fit gives
    A its factor, B none, and the default profile (an engine not measured) keeps 1."""
    devices = [("nvidia-rtx-4090", "1008"), ("nvidia-rtx-3090", "936.2"), ("nvidia-l40s", "864"),
               ("nvidia-a100-sxm4-80gb", "2039"), ("nvidia-h100-sxm5-80gb", "3350"), ("nvidia-a30", "933")]
    rows = [synthetic_row(engine, model, hid, bw, weights="f16") for engine in ("enga", "engb")
            for model in ("llama-2-7b", "llama-2-13b") for hid, bw in devices]
    profiles = fit_synthetic(tmp_path, rows, lambda row, m, ceiling, hbm:
                             ceiling * (0.8 * (0.6 if hbm else 1.0) if row["engine"] == "enga" else 0.7))
    assert profiles["enga"].bw_factor_hbm == pytest.approx(0.6, abs=0.04)
    # on bounded grids (efficiency in steps of 0.02, factor 0.024) the two trade a little
    assert profiles["enga"].bandwidth_efficiency == pytest.approx(0.8, abs=0.05)
    assert profiles["engb"].bw_factor_hbm == pytest.approx(1.0, abs=0.04)
    assert profiles["default"].bw_factor_hbm == 1.0


def test_queued_ttft_rows_are_validated_but_not_fitted(tmp_path):
    """TTFT under client concurrency includes queueing the estimate leaves out. Rows at concurrency 1 follow a
    50% compute efficiency; rows at concurrency 8 are 3x slower (a queue). The fit must not lower the
    efficiency to explain the queue."""
    devices = [("nvidia-a100-sxm4-80gb", "2039"), ("nvidia-h100-sxm5-80gb", "3350"), ("nvidia-l40s", "864")]
    rows = [synthetic_row("engq", model, hid, bw, weights="f16", metric="ttft_ms", prompt_tokens="2048",
                          gen_tokens="0", batch=batch)
            for model in ("llama-2-7b", "llama-2-13b") for hid, bw in devices for batch in ("1", "8")]
    # ceiling_ms at 50% compute, three times that behind a queue
    profile = fit_synthetic(tmp_path, rows, lambda row, m, ceiling, hbm:
                            ceiling / 0.5 * (3 if m.batch > 1 else 1))["engq"]
    assert profile.compute_efficiency == pytest.approx(0.5, abs=0.03)


def test_launch_cost_per_layer_is_recovered_and_the_fixed_overhead_kept_apart(tmp_path):
    """llama.cpp CUDA decode steps take memory / 80% of bandwidth + 300 µs, plus 40 µs per layer where kernels are
    launched one by one (Pascal and Turing cards in 2025 builds; engines.replays_graph). Both numbers come back.
    Metal steps are all launched kernel by kernel: a fixed part cannot be told from a per-layer one with two layer
    counts, so that level fits the per-layer cost and keeps its parent's fixed overhead (Metal is a family of its
    own, so its parent is the all-engine default, not llama.cpp's CUDA fit)."""
    from llm_roofline.architecture import load_model
    from llm_roofline.engines import replays_graph
    from llm_roofline.hardware import load_hardware

    graphs = [("nvidia-rtx-4090", "1008"), ("nvidia-rtx-3090", "936.2"), ("nvidia-l40s", "864"),
              ("nvidia-rtx-a6000", "768")]
    launched = [("nvidia-rtx-2080-ti", "616"), ("nvidia-t4", "320"), ("nvidia-gtx-1080-ti", "484"),
                ("nvidia-titan-xp", "547.6")]
    rows = [{**synthetic_row("llama.cpp-cuda", model, hid, bw, weights="f16"), "build_date": "2025"}
            for model in ("llama-2-7b", "llama-2-13b") for hid, bw in graphs + launched]
    rows += [{**synthetic_row("llama.cpp-metal", model, hid, bw, weights="f16"), "build_date": "2025"}
             for model in ("llama-2-7b", "llama-2-13b") for hid, bw in graphs]

    def law(row, m, ceiling, hbm):
        step = 1 / ceiling / 0.8 + 300e-6
        if not replays_graph(m.engine, load_hardware(m.hardware_id), m.build_date):
            step += 40e-6 * load_model(m.model).n_layers
        return 1 / step

    profiles = fit_synthetic(tmp_path, rows, law, header=[*HEADER, "build_date"])
    cuda = profiles["llama.cpp-cuda"]
    assert cuda.bandwidth_efficiency == pytest.approx(0.8, abs=0.03)
    assert cuda.step_overhead_us == pytest.approx(300, rel=0.2)  # a geometric grid: 18% between points
    assert cuda.launch_us_per_layer == pytest.approx(40, rel=0.2)
    metal = profiles["llama.cpp-metal"]
    assert metal.launch_us_per_layer > 0
    assert metal.step_overhead_us == profiles["default"].step_overhead_us


def _row(hardware: str, **kw):
    from llm_roofline.validate import Measurement

    base = dict(line=2, source="s", engine="llama.cpp-cuda", hardware=hardware, hardware_id="", bandwidth_gbps=273.0,
                fp16_tflops=None, memory_gb=128.0, devices=1, parallel="none", model="llama-3.1-8b",
                weights="q4_k_m", kv_cache="f16", batch=1, prompt_tokens=512, kv_depth=0, gen_tokens=0,
                metric="prefill_tok_s", value=1.0, flash_attention="unknown")
    return Measurement(**{**base, **kw})


def test_a_device_known_only_by_name_gets_no_compute_ceiling():
    """No record and no stated peak: the estimate assumes a peak, the ceiling does not pretend to bound compute:
    its prefill is the bytes over the bandwidth alone."""
    import llm_roofline as lr
    from llm_roofline.validate import row_hardware

    hw = row_hardware(_row("NVIDIA Jetson AGX Thor"))
    assert hw.category == "edge_soc" and "fp16" in hw.estimated_peaks
    p = lr.predict("llama-3.1-8b", hw, weights="q4_k_m", prompt=512)
    assert p.prefill.ttft_floor_ms == pytest.approx(p.prefill.bytes / (273.0e9) * 1e3, rel=1e-9)
    # the estimate still counts the assumed compute: q4_k_m multiplies on the (assumed) int8 units
    assert p.prefill.ttft_ms / 1e3 >= p.prefill.flops / (hw.peak_tflops["int8"] * 1e12)
    assert any("no published compute peak" in n for n in p.notes)
    stated = row_hardware(_row("NVIDIA Jetson AGX Thor", fp16_tflops=500.0))
    assert "fp16" not in stated.estimated_peaks


@pytest.mark.parametrize("name,category", [("AMD EPYC 9654", "server_cpu"), ("Intel Xeon Platinum 8480+", "server_cpu"),
                                           ("AMD Ryzen 9 7950X", "desktop_cpu"), ("AMD Ryzen AI Max+ 395", "apu"),
                                           ("Apple M3 Max", "apple_soc"), ("AMD Instinct MI300X", "datacenter_gpu")])
def test_row_devices_without_a_record_are_classed_by_name(name, category):
    from llm_roofline.validate import row_hardware

    assert row_hardware(_row(name)).category == category


def test_a_level_informed_by_one_source_is_shrunk_toward_its_parent(tmp_path):
    """Engine solo (one source) runs at 50% of bandwidth, engine many (two sources) at 90%: many keeps its fit;
    solo keeps half of its departure from the default, geometrically: sqrt(default x 0.5)."""
    devices = [("nvidia-rtx-4090", "1008"), ("nvidia-a100-sxm4-80gb", "2039"), ("nvidia-l40s", "864"),
               ("nvidia-h100-sxm5-80gb", "3350"), ("nvidia-rtx-3090", "936.2")]
    rows = [synthetic_row("many", model, hid, bw, weights="f16") for model in ("llama-2-7b", "llama-2-13b")
            for hid, bw in devices]
    rows += [{**synthetic_row("solo", model, hid, bw, weights="f16"), "source": "solo README"}
             for model in ("llama-2-7b", "llama-2-13b") for hid, bw in devices]
    efficiency = {"many": 0.9, "solo": 0.5}
    profiles = fit_synthetic(tmp_path, rows, lambda row, m, ceiling, hbm: ceiling * efficiency[row["engine"]])
    assert profiles["many"].bandwidth_efficiency == pytest.approx(0.9, abs=0.03)
    expected = (profiles["default"].bandwidth_efficiency * 0.5) ** 0.5
    assert profiles["solo"].bandwidth_efficiency == pytest.approx(expected, abs=0.03)
