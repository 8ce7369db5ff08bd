"""The command end to end through its entry point: output, JSON contract, and one-line errors with exit 2."""

import json
import os

import pytest

from llm_roofline import catalog
from llm_roofline.cli import main


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_predict_table_and_explain(capsys):
    code, out, err = run(capsys, "predict", "llama-3.1-70b", "--hardware", "h100", "--explain")
    assert code == 0 and err == ""
    assert "memory-bound" in out and "DOES NOT FIT" in out
    assert "139.2 GB" in out and "÷ 3,350 GB/s" in out and "24.1 tok/s" in out
    assert "would help" in out


def test_predict_json_contract(capsys):
    code, out, _ = run(capsys, "predict", "llama-3.1-8b", "-H", "4090", "--weights", "q4_k_m", "--batch", "4",
                       "--json")
    assert code == 0
    d = json.loads(out)
    assert {"id", "params_total", "params_active", "weight_bytes"} <= d["model"].keys()
    assert {"id", "bandwidth_gbps", "memory_gb"} <= d["hardware"].keys()
    assert {"ceiling_tok_s", "estimate_tok_s", "ceiling_throughput_tok_s", "estimate_throughput_tok_s",
            "tpot_floor_ms", "tpot_ms", "bytes_per_step", "flops_per_step", "bound"} <= d["decode"].keys()
    assert {"ttft_floor_ms", "ttft_ms", "ttft_low_ms", "ttft_high_ms", "bound"} <= d["prefill"].keys()
    assert {"estimate_low_tok_s", "estimate_high_tok_s"} <= d["decode"].keys()
    assert {"weights_gb", "kv_cache_gb", "total_gb", "fits", "min_devices"} <= d["memory"].keys()
    assert d["decode"]["bound"] in ("memory", "compute")
    assert d["decode"]["ceiling_throughput_tok_s"] == pytest.approx(4 * d["decode"]["ceiling_tok_s"])
    assert d["workload"]["batch"] == 4 and d["operators"]


def test_compare_sorted(capsys):
    code, out, _ = run(capsys, "compare", "llama-3.1-8b", "-H", "h100,4090,m2-ultra", "--weights", "f16,q4_k_m",
                       "--json")
    assert code == 0
    rows = json.loads(out)
    assert len(rows) == 6
    speeds = [r["decode"]["estimate_tok_s"] for r in rows]
    assert speeds == sorted(speeds, reverse=True)
    code, out, _ = run(capsys, "compare", "llama-3.1-8b", "qwen3-8b", "-H", "h100", "-H", "a100")
    assert code == 0 and "qwen3-8b" in out and "a100" in out and "a100-80gb" not in out


def test_catalog_commands(capsys):
    code, out, _ = run(capsys, "hardware", "list", "--json")
    assert code == 0 and len(json.loads(out)) == len(catalog.hardware_records())
    code, out, _ = run(capsys, "hardware", "show", "h100")
    assert code == 0 and "3,350" in out and "source:" in out
    code, out, _ = run(capsys, "models", "list", "--json")
    assert code == 0 and any(r["id"] == "deepseek-v3" for r in json.loads(out))
    code, out, _ = run(capsys, "models", "show", "deepseek-v3")
    assert code == 0 and "MLA" in out
    code, out, _ = run(capsys, "models", "show", "gemma-2-9b", "--json")
    assert json.loads(out)["params"]["total"] == pytest.approx(9.24e9, rel=0.01)


def test_plot_written(capsys, tmp_path):
    target = tmp_path / "roof.png"
    code, _, _ = run(capsys, "predict", "llama-3.1-8b", "--plot", str(target))
    assert code == 0 and target.read_bytes()[:4] == b"\x89PNG"
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # not the owner-only mode of a temporary file


@pytest.mark.parametrize("args,fragment", [
    (["predict", "llama-3.1-7b"], "closest: llama-3.1-70b"),
    (["predict", "llama-3.1-8b", "-H", "h10"], "closest: h100"),
    (["predict", "llama-3.1-8b", "--weights", "q4km"], "closest: q4_k_m"),
    (["predict", "llama-3.1-8b", "--kv-cache", "q9"], "KV-cache format"),
    (["predict", "llama-3.1-8b", "--batch", "0"], "batch must be"),
    (["predict", "llama-3.1-8b", "--prompt", "-3"], "prompt must be"),
    (["predict", "llama-3.1-8b", "--tp", "0"], "tp must be"),
    (["predict", "llama-3.1-8b", "--bandwidth-efficiency", "2"], "bandwidth_efficiency"),
    (["predict", "llama-3.1-8b", "--batch", "many"], "--batch"),
    (["predict", "llama-3.1-8b", "--no-such-flag"], "no-such-flag"),
    (["predict", "llama-3.1-8b", "--plot", "out.txt"], "must end in"),
    (["predict", "./missing/config.json"], "does not exist"),
    (["compare", "llama-3.1-8b", "--sort", "speed"], "--sort"),
    (["hardware", "show", "h1000"], "unknown hardware"),
    (["models", "show", "gpt5"], "unknown model"),
])
def test_bad_input_one_line_exit_2(capsys, args, fragment):
    code, out, err = run(capsys, *args)
    assert code == 2
    assert fragment in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert out == ""


def test_malformed_config_names_the_field(capsys, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama", "num_hidden_layers": 2}))
    code, _, err = run(capsys, "predict", str(tmp_path))
    assert code == 2 and "hidden_size" in err


def test_failed_run_writes_no_plot(capsys, tmp_path):
    target = tmp_path / "roof.png"
    code, _, _ = run(capsys, "predict", "no-such-model", "--plot", str(target))
    assert code == 2 and not target.exists() and list(tmp_path.iterdir()) == []


def test_console_script_runs(tmp_path):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "llm_roofline.cli", "predict", "nope"], capture_output=True,
                            text=True)
    assert result.returncode == 2 and result.stderr.startswith("llm-roofline: error:")


def test_version_and_flags_without_a_bool_metavar(capsys):
    import llm_roofline

    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip() == f"llm-roofline {llm_roofline.__version__}"
    for command in ("predict", "compare", "sweep", "plan"):
        code, out, _ = run(capsys, command, "--help")
        assert code == 0
        flag_lines = [line for line in out.splitlines() if "--json" in line or "--explain" in line]
        assert flag_lines and not any("<bool>" in line for line in flag_lines), command


@pytest.mark.parametrize("args,has_chart", [
    (["predict", "llama-3.1-8b", "-H", "4090"], True),
    (["compare", "llama-3.1-8b", "-H", "h100,4090"], True),
    (["sweep", "llama-3.1-8b", "-H", "h100", "--batch", "1-16"], True),
    (["plan", "llama-3.1-8b", "-H", "h100", "--tpot-ms", "50"], False),
])
def test_html_reports_are_self_contained(capsys, tmp_path, args, has_chart):
    path = tmp_path / "r.html"
    code, out, err = run(capsys, *args, "--html", str(path))
    assert code == 0, err
    text = path.read_text()
    assert text.startswith("<!doctype html>") and "<script" not in text and "src=\"http" not in text
    assert "href=\"http" not in text and ("<svg" in text) == has_chart
    code, _, err = run(capsys, *args, "--html", str(tmp_path / "r.txt"))
    assert code == 2 and "--html" in err
