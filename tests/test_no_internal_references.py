"""No output or document names the team's own material (its data files, issue numbers, work sessions): users
get the public sources instead."""

import re
from pathlib import Path

import pytest

from llm_roofline.cli import main

ROOT = Path(__file__).resolve().parents[1]
INTERNAL = re.compile(r"shared/|hardware-notes|INDEX\.md|design\.md|(?<!_)dev\.csv|\b[Ii]ssues? #?\d+|\bsessions?\b")


def _hits(text: str) -> list[str]:
    return [m.group(0) for m in INTERNAL.finditer(text)]


def test_docs_readme_and_shipped_data_name_no_internal_material():
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
             *sorted((ROOT / "src" / "llm_roofline" / "catalog").glob("*.json")),
             *sorted((ROOT / "src" / "llm_roofline" / "web" / "static").glob("*"))]
    found = {f.name: _hits(f.read_text(errors="replace")) for f in files if f.is_file()}
    assert not {k: v for k, v in found.items() if v}


@pytest.mark.parametrize("args", [
    ["predict", "llama-3.1-8b", "-H", "4090", "--weights", "q4_k_m", "--explain"],
    ["predict", "qwen3-30b-a3b", "-H", "h100", "--ep", "4", "--json", "--explain"],
    ["predict", "llama-3.1-8b", "-H", "NVIDIA Jetson Thor-ish", "--json"],
    ["compare", "llama-3.1-8b", "-H", "h100,4090,m2-ultra", "--engine", "llama.cpp-cuda"],
    ["hardware", "show", "h100"], ["hardware", "list"], ["models", "show", "deepseek-v3"],
    ["sweep", "llama-3.1-8b", "-H", "h100", "--batch", "1,8", "--context", "1k"],
    ["plan", "llama-3.1-8b", "-H", "h100,4090", "--rate", "2", "--tpot-ms", "50"],
    ["predict", "no-such-model"], ["predict", "llama-3.1-8b", "--weights", "q9"],
])
def test_cli_outputs_name_no_internal_material(capsys, args):
    main(args)
    out, err = capsys.readouterr()
    assert not _hits(out + err), (args, _hits(out + err))
