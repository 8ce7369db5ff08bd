"""scripts/sync_catalog.py: the build dates read from sources' text and the added devices' ids in the CSV copy."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "sync_catalog.py"


@pytest.fixture(scope="module")
def sync():
    spec = importlib.util.spec_from_file_location("sync_catalog", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("source,date", [
    ("XiongjieDai/GPU-Benchmarks-on-LLM-Inference README.md @aa72e0e (snapshots May 2024)", "2024-05"),
    ("mlc-ai/llm-perf-bench README.md @d401356 (Oct-Nov 2023)", "2023-11"),
    ("pytorch-labs/gpt-fast README.md @32971d3 (2024-09-15)", "2024-09"),
    ("https://github.com/ggml-org/llama.cpp/pull/6017 (comment by ggerganov, Mar 2024)", "2024-03"),
    ('turboderp/exllamav2 README.md "Performance" table (@b9c025b, table from 2023)', "2023"),
    ("https://github.com/ggml-org/llama.cpp/discussions/15013", ""),
    ("repo README.md @2024abc", ""),  # a commit hash is not a year
])
def test_build_date_from_source_text(sync, source, date):
    assert sync.build_date(source) == date


def test_fill_rows_sets_only_empty_ids(sync):
    text = ("source,hardware,hardware_id,value\n"
            "a (May 2024),NVIDIA RTX 3060,,1\n"
            "b,NVIDIA RTX 3060,nvidia-x,2\n"
            "c,Unknown GPU,,3\n")
    out, filled = sync.fill_rows(text, {"NVIDIA RTX 3060": "nvidia-rtx-3060-12gb"})
    assert filled == 1
    assert out.splitlines() == ["source,hardware,hardware_id,value,build_date",
                                "a (May 2024),NVIDIA RTX 3060,nvidia-rtx-3060-12gb,1,2024-05",
                                "b,NVIDIA RTX 3060,nvidia-x,2,", "c,Unknown GPU,,3,"]


@pytest.mark.parametrize("hid,names", [("nvidia-rtx-3060-12gb", ["rtx-3060", "3060"]), ("nvidia-rtx-5070", ["5070"]),
                                       ("nvidia-a40", []), ("nvidia-tesla-p100-pcie-16gb", ["tesla-p100"])])
def test_short_names_of_added_devices(sync, hid, names):
    assert sync.short_names(hid) == names


def test_a_name_used_twice_is_refused(sync):
    hardware = [{"id": "nvidia-a40", "aliases": ["a40"]}, {"id": "nvidia-rtx-3060-12gb", "aliases": ["3060", "a40"]}]
    with pytest.raises(SystemExit, match="'a40' used by nvidia-a40 and nvidia-rtx-3060-12gb"):
        sync.check_unique_names(hardware)


def test_scoreboards_without_a_date_get_their_year(sync):
    text = ("source,hardware,hardware_id,metric,devices,value,notes\n"
            "https://github.com/ggml-org/llama.cpp/discussions/15013,NVIDIA RTX 4090,,decode_tok_s,1,186,\n"
            "https://github.com/ggml-org/llama.cpp/discussions/10879,AMD RX 7900 XTX,,decode_tok_s,1,150,\n"
            "me (May 2024),NVIDIA RTX 4090,,decode_tok_s,1,150,\n")
    out, _ = sync.fill_rows(text, {})
    assert [line.rsplit(",", 1)[1] for line in out.splitlines()[1:]] == ["2025", "2024-12", "2024-05"]


def test_tensorrt_llm_a100_multi_gpu_throughput_is_per_gpu(sync):
    """The A100 table's multi-GPU throughput is per GPU (as the H100 table says of its own): x devices. One-GPU
    rows, other metrics and other devices stay as published."""
    src = "NVIDIA/TensorRT-LLM docs/source/performance.md (v0.6.1 era; commit 138f96d)"
    row = {"source": src, "metric": "throughput_tok_s", "hardware": "NVIDIA A100 80GB (form factor not stated)",
           "devices": "4", "value": "670", "notes": "Peak Throughput table"}
    assert sync.correct_row(row) and row["value"] == "2680" and "per GPU, x 4 GPUs" in row["notes"]
    for other in ({"devices": "1"}, {"metric": "ttft_ms"}, {"hardware": "NVIDIA H100 SXM5 80GB"},
                  {"source": "someone else's table"}):
        unchanged = {**row, "value": "670", **other}
        assert not sync.correct_row(unchanged) and unchanged["value"] == "670"
