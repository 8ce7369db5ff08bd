"""Bad input gets one line: every case a hostile user found, as a test, plus the seeded fuzz run.

Each case goes through the console entry point and must end in exit 2, one line on stderr, no traceback, nothing
on stdout and nothing written; the cases that are valid must give strict JSON.
"""

import csv
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llm_roofline import catalog
from llm_roofline.cli import main

ROOT = Path(__file__).resolve().parents[1]


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def refused(capsys, *args, fragment: str = ""):
    code, out, err = run(capsys, *args)
    assert code == 2, (code, out[-300:], err)
    assert err.startswith("llm-roofline: error:") and err.count("\n") == 1 and "Traceback" not in err, err
    assert out == ""
    assert fragment.lower() in err.lower(), err
    return err


def strict_json(text: str):
    def no_constant(name):
        raise AssertionError(f"{name} in JSON output")

    return json.loads(text, parse_constant=no_constant)


# ------------------------------------------------------------------------------------------- output paths


def test_plot_into_a_directory_is_refused(capsys, tmp_path):
    refused(capsys, "predict", "llama-3.2-1b", "--plot", tmp_path, fragment="must end in")
    (tmp_path / "d.png").mkdir()
    refused(capsys, "predict", "llama-3.2-1b", "--plot", tmp_path / "d.png", fragment="is a directory")


def test_plot_where_nothing_can_be_written_is_refused(capsys):
    refused(capsys, "predict", "llama-3.2-1b", "--plot", "/proc/m.png", fragment="cannot write")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_plot_into_a_read_only_directory_is_refused(capsys, tmp_path):
    tmp_path.chmod(0o500)
    try:
        refused(capsys, "predict", "llama-3.2-1b", "--plot", tmp_path / "r.png", fragment="cannot write")
    finally:
        tmp_path.chmod(0o700)


def test_measure_refuses_its_outputs_before_measuring(capsys, tmp_path):
    start = time.perf_counter()
    refused(capsys, "measure", "--device", "cpu", "--quick", "--out", tmp_path, fragment="--out")
    ok = tmp_path / "ok.json"
    refused(capsys, "measure", "--device", "cpu", "--quick", "--out", ok, "--plot", "/proc/m.png",
            fragment="cannot write")
    assert time.perf_counter() - start < 10  # a quick measurement takes most of a minute
    assert not ok.exists() and list(tmp_path.iterdir()) == []


def test_calibrate_refuses_a_directory_as_out(capsys, tmp_path):
    refused(capsys, "calibrate", "--data", catalog.MEASUREMENTS_CSV, "--out", tmp_path, fragment="--out")


# ------------------------------------------------------------------------------------------- device JSON


def _device(tmp_path, **changes) -> Path:
    rec = {"id": "mine", "name": "my GPU", "category": "consumer_gpu", "memory_gb": 24, "bandwidth_gbps": 1000,
           "peak_tflops": {"fp16": 100, "fp32": 50}}
    rec.update(changes)
    path = tmp_path / "dev.json"
    path.write_text(json.dumps(rec))
    return path


@pytest.mark.parametrize("field,value", [
    ("sources", 5), ("link_gbps_bidir", "fast"), ("measured", [1, 2]), ("bandwidth", [{}]), ("sm_count", "many"),
    ("compute_capability", "hopper"), ("bandwidth_gbps", True), ("bandwidth_gbps", -3),
    ("peak_tflops", {"fp16": -1}), ("peak_tflops", {"fp16": "lots"}), ("memory_gb", 0), ("category", "gpu"),
    ("boost_clock_mhz", float("inf")), ("measured", {"bandwidth_efficiency": 2.0}),
])
def test_device_json_fields_of_the_wrong_type_or_range(capsys, tmp_path, field, value):
    err = refused(capsys, "predict", "llama-3.2-1b", "-H", _device(tmp_path, **{field: value}))
    assert field in err


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_device_json_nan_and_infinity(capsys, tmp_path, literal):
    path = _device(tmp_path)
    path.write_text(path.read_text().replace('"bandwidth_gbps": 1000', f'"bandwidth_gbps": {literal}'))
    refused(capsys, "predict", "llama-3.2-1b", "-H", path, fragment="bandwidth_gbps")


def test_a_valid_device_file_still_predicts(capsys, tmp_path):
    code, out, _ = run(capsys, "predict", "llama-3.2-1b", "-H", _device(tmp_path), "--json")
    assert code == 0 and strict_json(out)["hardware"]["bandwidth_gbps"] == 1000


# ------------------------------------------------------------------------------------------- configs


def _config(tmp_path, text: str | None = None, **changes) -> Path:
    raw = json.loads((catalog.MODELS_DIR / "llama-3.2-1b.json").read_text())
    raw.update(changes)
    path = tmp_path / "config.json"
    path.write_text(text if text is not None else json.dumps(raw))
    return path


@pytest.mark.parametrize("literal", ["NaN", "Infinity"])
def test_config_nan_and_infinity(capsys, tmp_path, literal):
    path = _config(tmp_path)
    path.write_text(path.read_text().replace('"rms_norm_eps": 1e-05', f'"rms_norm_eps": {literal}'))
    assert literal in path.read_text()
    refused(capsys, "predict", path, fragment="'rms_norm_eps' is")


@pytest.mark.parametrize("changes,fragment", [
    ({"sliding_window": -5}, "sliding_window"),
    ({"num_hidden_layers": 10**9}, "num_hidden_layers"),
    ({"hidden_size": 10**12}, "hidden_size"),
    ({"num_attention_heads": 7}, "multiple"),
    ({"num_attention_heads": 4096, "head_dim": None}, "multiple"),
    ({"tie_word_embeddings": "false"}, "tie_word_embeddings"),
    ({"vocab_size": 1.5}, "vocab_size"),
    ({"layer_types": ["full_attention"]}, "layer_types"),
    ({"max_position_embeddings": -1}, "max_position_embeddings"),
])
def test_config_fields_out_of_range(capsys, tmp_path, changes, fragment):
    start = time.perf_counter()
    refused(capsys, "predict", _config(tmp_path, **changes), fragment=fragment)
    assert time.perf_counter() - start < 2  # no hang on huge counts


def test_experts_per_token_above_the_experts(capsys, tmp_path):
    raw = json.loads((catalog.MODELS_DIR / "qwen3-30b-a3b.json").read_text())
    raw["num_experts_per_tok"] = raw["num_experts"] + 1
    path = tmp_path / "config.json"
    path.write_text(json.dumps(raw))
    refused(capsys, "predict", path, fragment="experts per token")


# ------------------------------------------------------------------------------------------- CLI options


@pytest.mark.parametrize("args,fragment", [
    (["predict", "llama-3.1-8b", "--step-overhead-us", "nan"], "step_overhead_us"),
    (["predict", "llama-3.1-8b", "--step-overhead-us", "inf"], "step_overhead_us"),
    (["predict", "llama-3.1-70b", "--tp", "128"], "valid: 1, 2, 4, 8, 16, 32, 64"),
    (["predict", "llama-3.1-70b", "--tp", "3"], "--tp 3"),
    (["predict", "llama-3.1-8b", "--weights="], "weights is empty"),
    (["predict", "llama-3.1-8b", "--engine="], "engine is empty"),
    (["predict", "llama-3.1-8b", "--kv-cache="], "kv_cache is empty"),
    (["predict", "llama-3.1-8b", "--batch", str(2**40)], "batch"),
    (["compare", ",,,"], "names nothing"),
    (["compare", "llama-3.1-8b", "-H", ",,"], "names nothing"),
    (["compare", "llama-3.1-8b", "--weights", ","], "names nothing"),
])
def test_options_accepted_silently_before(capsys, args, fragment):
    refused(capsys, *args, fragment=fragment)


def test_device_without_a_published_peak_predicts(capsys):
    code, out, err = run(capsys, "predict", "llama-3.1-8b", "-H", "apple-m5", "--weights", "q4_k_m", "--engine",
                         "llama.cpp-metal", "--json")
    assert code == 0, err
    d = strict_json(out)
    assert d["decode"]["estimate_tok_s"] > 0 and any("no compute peak" in n for n in d["notes"])


def test_json_output_is_strict_when_a_value_is_not_finite():
    from llm_roofline.files import dumps_strict

    text = dumps_strict({"a": float("nan"), "b": [1.0, float("inf")], "notes": []})
    d = strict_json(text)
    assert d["a"] is None and d["b"] == [1.0, None]
    assert d["notes"] == ["not bounded (null): a, b[1]"]


# ------------------------------------------------------------------------------------------- CSV and profiles


def _csv(tmp_path, edit=None, short: bool = False, rows: int = 2) -> Path:
    with open(catalog.MEASUREMENTS_CSV, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header, recs = reader.fieldnames, [r for _, r in zip(range(rows), reader)]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    for i, rec in enumerate(recs):
        if i == 0 and edit:
            rec.update(edit)
        values = [rec[h] for h in header]
        w.writerow(values[:5] if short and i == 0 else values)
    path = tmp_path / "rows.csv"
    path.write_text(buf.getvalue())
    return path


@pytest.mark.parametrize("field,value", [("batch", "inf"), ("batch", "1e400"), ("devices", "inf"),
                                         ("devices", "1e400"), ("value", "nan"), ("batch", "-2")])
def test_csv_numbers_out_of_range_are_skipped_with_the_reason(capsys, tmp_path, field, value):
    code, out, err = run(capsys, "validate", "--data", _csv(tmp_path, {field: value}), "--json")
    assert code == 0, err
    d = strict_json(out)
    assert len(d["rows"]) == 1 and d["skipped"][0]["line"] == 2 and field in d["skipped"][0]["reason"]


def test_csv_with_only_bad_rows_is_refused(capsys, tmp_path):
    refused(capsys, "validate", "--data", _csv(tmp_path, {"batch": "inf"}, rows=1), fragment="no row")


@pytest.mark.parametrize("extra", [["--rows"], ["--by", "source"]])
def test_csv_short_row(capsys, tmp_path, extra):
    code, out, err = run(capsys, "validate", "--data", _csv(tmp_path, short=True), *extra)
    assert code == 0, err
    assert "skipped line 2: row has 5 fields" in out


@pytest.mark.parametrize("content", ['[1, 2]', '{"profiles": []}', '{"profiles": {"default": 3}}',
                                     '{"profiles": {"default": {"bandwidth_efficiency": "x"}}}',
                                     '{"profiles": {"default": {"bandwidth_efficiency": NaN}}}', 'not json'])
def test_profiles_of_the_wrong_shape(capsys, tmp_path, content):
    path = tmp_path / "p.json"
    path.write_text(content)
    refused(capsys, "validate", "--profiles", path, fragment="engine-profile")


def test_calibrate_on_one_source_is_refused_before_fitting(capsys, tmp_path):
    path = _csv(tmp_path, rows=12)
    with open(path, newline="") as fh:
        assert len({r["source"] for r in csv.DictReader(fh)}) == 1
    refused(capsys, "calibrate", "--data", path, "--out", tmp_path / "p.json", fragment="two sources")
    assert not (tmp_path / "p.json").exists()


# ------------------------------------------------------------------------------------------- bench


def test_bench_checks_the_model_before_measuring(capsys):
    start = time.perf_counter()
    refused(capsys, "bench", "no-such-model", "--device", "cpu", fragment="unknown model")
    refused(capsys, "bench", "gpt2", "--device", "cpu", "--prompt", "2000", fragment="1024 positions")
    assert time.perf_counter() - start < 10


def test_bench_refuses_a_corrupt_safetensors_file(capsys, tmp_path):
    (tmp_path / "config.json").write_text((catalog.MODELS_DIR / "smollm2-135m.json").read_text())
    (tmp_path / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header")
    refused(capsys, "bench", tmp_path, "--device", "cpu", fragment="not a readable safetensors file")


# ------------------------------------------------------------------------------------------- fuzzing


def test_seeded_fuzz_finds_no_traceback_hang_or_nonsense():
    """3,000 mutated configs, device JSONs and CSV rows, each bounded in time (5 s) and the whole run in memory
    (4 GiB of address space): every case is a one-line refusal or a finite, non-negative, strict result."""
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "fuzz.py"), "--seed", "20261202", "--cases",
                             "3000", "--memory-gb", "4", "--json"], capture_output=True, text=True, timeout=600)
    assert result.returncode in (0, 1), result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert sum(r["cases"] for r in report.values()) == 3000
    failures = [f for r in report.values() for f in r["failures"]]
    assert failures == [], failures[:5]
    # the mutations reach both outcomes for every input kind: neither all refused nor all accepted
    for kind, r in report.items():
        assert r["ok"] > 0 and r["refused"] > 0, kind
