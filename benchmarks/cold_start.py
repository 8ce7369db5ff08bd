"""Cold-start time of the `llm-roofline` command and Python-API predictions per second.

    python benchmarks/cold_start.py [--runs 15] [--out docs/performance.md]

Cold start: a fresh interpreter per run (`python -m llm_roofline.cli predict ... --json`), median and range of
`--runs` runs, so import time, catalog loading and one prediction are all counted. Throughput: predictions per
second in one process, catalog ids passed as strings (cached after first use) over a sweep of batches.
Target: cold start under 0.3 s. The interpreters cache bytecode as an installed package does (a shell's
PYTHONDONTWRITEBYTECODE is dropped for them, and one untimed run writes the cache first).
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import subprocess
import sys
import time


def cold_start(args: list[str], runs: int) -> list[float]:
    import os

    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([sys.executable, "-m", "llm_roofline.cli", *args], check=True, capture_output=True, env=env)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "llm_roofline.cli", *args], check=True, capture_output=True, env=env)
        times.append(time.perf_counter() - start)
    return times


def api_rate(seconds: float = 3.0) -> tuple[float, int]:
    import llm_roofline

    cases = [("llama-3.1-8b", "h100"), ("qwen3-30b-a3b", "4090"), ("deepseek-v3", "b200"), ("gemma-3-27b", "m4-max")]
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        model, hw = cases[n % len(cases)]
        llm_roofline.predict(model, hw, batch=1 + n % 64, gen=128)
        n += 1
    return n / (time.perf_counter() - start), n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    opts = parser.parse_args()
    python = [sys.executable, "-c", "pass"]
    bare = []
    for _ in range(opts.runs):
        start = time.perf_counter()
        subprocess.run(python, check=True)
        bare.append(time.perf_counter() - start)
    rows = [
        ("python -c pass (interpreter alone)", bare),
        ("llm-roofline --help", cold_start(["--help"], opts.runs)),
        ("llm-roofline predict llama-3.1-70b --hardware h100 --json",
         cold_start(["predict", "llama-3.1-70b", "--hardware", "h100", "--json"], opts.runs)),
        ("llm-roofline predict deepseek-v3 --hardware h200 --tp 8 --explain",
         cold_start(["predict", "deepseek-v3", "--hardware", "h200", "--tp", "8", "--explain"], opts.runs)),
    ]
    rate, n = api_rate()
    print(f"date {datetime.date.today()}, {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}, {opts.runs} runs each")
    print("| command | median s | min s | max s |")
    print("|---|---|---|---|")
    for name, t in rows:
        print(f"| `{name}` | {statistics.median(t):.3f} | {min(t):.3f} | {max(t):.3f} |")
    print(f"\nPython API: {rate:,.0f} predictions/s ({n} predictions of 4 model/device pairs, batch 1-64, 128 "
          "generated tokens, in one process)")


if __name__ == "__main__":
    main()
