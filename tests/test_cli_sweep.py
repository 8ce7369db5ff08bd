"""`sweep` and `compare` on the command line: ranges, device selection, the trade-off curve, files, errors."""

import csv
import json

import numpy as np
import pytest

import llm_roofline as lr
from llm_roofline.cli import main
from llm_roofline.cli_common import parse_values
from llm_roofline.errors import UserError
from llm_roofline.hardware import hardware_ids, select_hardware
from llm_roofline.sweeps import pareto_front


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_values_and_ranges():
    assert parse_values(["1-512"], "--batch") == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
    assert parse_values(["3-100"], "--batch") == [3, 4, 8, 16, 32, 64, 100]
    assert parse_values(["1k,8k", "32k"], "--context", minimum=0) == [1024, 8192, 32768]
    assert parse_values(["8,1,8"], "--tp") == [1, 8]
    for bad in (["0"], ["x"], ["9-3"], ["1.5"], [","]):
        with pytest.raises(UserError):
            parse_values(bad, "--batch")


def test_pareto_front_by_hand():
    # (per user, per device): (10, 100) and (50, 60) and (90, 20) trade off; (40, 50) loses to (50, 60) and
    # (90, 10) to (90, 20)
    x = [10, 40, 50, 90, 90]
    y = [100, 50, 60, 10, 20]
    assert pareto_front(x, y).tolist() == [0, 2, 4]


def test_select_hardware():
    assert len(select_hardware(["all"])) == len(hardware_ids())
    apple = select_hardware(["all"], ["apple"], 100)
    assert apple and all(h.device_class == "apple" and h.memory_gb >= 100 for h in apple)
    assert [h.id for h in select_hardware(["h100", "nvidia-h100-sxm5-80gb"])] == ["nvidia-h100-sxm5-80gb"]
    with pytest.raises(UserError, match="closest"):
        select_hardware(["all"], ["gpu"])
    with pytest.raises(UserError, match="no device matches"):
        select_hardware(["4090"], None, 1000)


def test_sweep_cli_csv_json_and_plot(capsys, tmp_path):
    out_csv, out_png = tmp_path / "s.csv", tmp_path / "s.png"
    code, out, err = run(capsys, "sweep", "llama-3.1-8b", "-H", "h100,4090", "--weights", "f16,q4_k_m",
                         "--batch", "1-64", "--context", "1k,8k", "--tp", "1,2", "--csv", str(out_csv),
                         "--plot", str(out_png))
    assert code == 0 and err == ""
    assert "trade-off curve" in out and "configurations" in out
    rows = list(csv.DictReader(out_csv.open()))
    assert len(rows) == 2 * 2 * 7 * 2 * 2  # devices x formats x batches x contexts x tp
    assert out_png.stat().st_size > 10_000
    # a row equals the scalar prediction of the same configuration
    r = next(r for r in rows if r["hardware"] == "nvidia-rtx-4090" and r["weights"] == "q4_k_m" and r["tp"] == "2"
             and float(r["batch"]) == 16 and float(r["context"]) == 8192)
    p = lr.predict("llama-3.1-8b", "4090", weights="q4_k_m", tp=2, batch=16, context=8192)
    assert float(r["tpot_ms"]) == pytest.approx(p.decode.tpot_ms, rel=1e-9)
    assert float(r["throughput_per_device_tok_s"]) == pytest.approx(p.decode.estimate_throughput_tok_s / 2, rel=1e-9)
    assert (r["fits"] == "True") == p.memory.fits
    code, out, _ = run(capsys, "sweep", "llama-3.1-8b", "--batch", "1,8", "--json")
    records = json.loads(out)
    assert code == 0 and [r["batch"] for r in records] == [1, 8]


@pytest.mark.parametrize("args,needle", [
    (["--tp", "3"], "--tp 3"),
    (["--batch", "0"], "--batch"),
    (["--context", "8q"], "--context"),
    (["-H", "h101"], "unknown hardware"),
    (["--csv", "/nonexistent/x.csv"], "--csv"),
])
def test_sweep_cli_refuses_in_one_line_before_work(capsys, tmp_path, args, needle):
    code, out, err = run(capsys, "sweep", "llama-3.1-8b", *args)
    assert code == 2 and out == ""
    assert needle in err and err.count("\n") == 1


def test_compare_all_devices_markdown_and_csv(capsys, tmp_path):
    path = tmp_path / "c.csv"
    code, out, err = run(capsys, "compare", "llama-3.1-8b", "-H", "all", "--category", "consumer", "--weights",
                         "q4_k_m", "--engine", "llama.cpp-cuda", "--markdown", "--csv", str(path))
    assert code == 0 and err == ""
    lines = [x for x in out.splitlines() if x.startswith("| llama")]
    consumer = [h for h in select_hardware(["all"], ["consumer"])]
    assert len(lines) == len(consumer)
    rows = list(csv.DictReader(path.open()))
    assert len(rows) == len(consumer)
    speeds = [float(r["estimate_tok_s"]) for r in rows]
    assert speeds == sorted(speeds, reverse=True)
    p = lr.predict("llama-3.1-8b", rows[0]["hardware"], weights="q4_k_m", engine="llama.cpp-cuda")
    assert float(rows[0]["estimate_tok_s"]) == pytest.approx(p.decode.estimate_tok_s, rel=1e-9)


def test_sweep_configs_refuses_a_sweep_too_large_before_compiling():
    from llm_roofline.sweeps import MAX_CONFIGS, sweep_configs

    with pytest.raises(UserError, match="configurations"):
        sweep_configs("llama-3.1-8b", ["h100", "a100"], batch=np.arange(1, MAX_CONFIGS // 2 + 2))
