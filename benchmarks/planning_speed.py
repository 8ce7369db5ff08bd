"""Planning speed: llm-roofline beside llm-analysis, measured in one run on one machine.

    python -m venv /tmp/la && /tmp/la/bin/pip install llm-analysis==0.2.2
    python benchmarks/planning_speed.py --peer-python /tmp/la/bin/python

Same workload for both: Llama-2-7B, one H100 SXM, 16-bit weights and activations, prompt 512, 256 generated
tokens, batch cycling 1..64. Each figure is the best of 5 rounds (the machine is shared: the best round is the
least disturbed one), and the two tools' runs alternate (--repeats, default 3). Measured:
  - scalar predictions per second: llm_roofline.predict (every figure and the operator table) and a compiled
    object's predict(), beside llm-analysis's infer() and a reused LLMAnalysis.inference();
  - sweep configurations per second: a grid of 512 batches x 64 contexts x 32 output lengths (1,048,576), and 1e6
    random configurations; llm-analysis has no array path, so its rate is a loop of inference() calls over a grid
    it accepts (batch 1-16 x prompt 512-4096: it raises on workloads that do not fit);
  - compare over the whole device catalog x 10 formats (Python API, a fresh process: compiles included);
  - cold start of `llm-roofline predict ... --json` (a fresh interpreter per run, median of 9).
Prints a Markdown section for docs/performance.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import subprocess
import sys
import time

ROUNDS = 5

PEER = r"""
import json, logging, sys, time
logging.disable(logging.CRITICAL)
from llm_analysis.analysis import LLMAnalysis, infer
from llm_analysis.config import (ParallelismConfig, get_dtype_config_by_name, get_gpu_config_by_name,
                                 get_model_config_by_name)
MODEL, GPU, DTYPE = "NousResearch_Llama-2-7b-hf", "h100-sxm-80gb", "w16a16e16"
def rate(fn, n):
    best = 0.0
    for _ in range(5):
        t = time.perf_counter()
        for i in range(n):
            fn(i)
        best = max(best, n / (time.perf_counter() - t))
    return best
a = LLMAnalysis(get_model_config_by_name(MODEL), get_gpu_config_by_name(GPU), get_dtype_config_by_name(DTYPE),
                ParallelismConfig())
out = {
    "infer": rate(lambda i: infer(model_name=MODEL, gpu_name=GPU, dtype_name=DTYPE, batch_size_per_gpu=1 + i % 64,
                                  seq_len=512, num_tokens_to_generate=256, log_level="CRITICAL"), 300),
    "inference": rate(lambda i: a.inference(batch_size_per_gpu=1 + i % 64, seq_len=512,
                                            num_tokens_to_generate=256), 500),
    # a grid it accepts (it refuses workloads that do not fit): batch 1-16 x prompt 512-4096
    "grid": rate(lambda i: a.inference(batch_size_per_gpu=1 + i % 16, seq_len=512 * (1 + (i // 16) % 8),
                                       num_tokens_to_generate=128), 2000),
}
import importlib.metadata as md
out["version"] = md.version("llm-analysis")
print(json.dumps(out))
"""


def best_rate(fn, n: int) -> float:
    best = 0.0
    for _ in range(ROUNDS):
        t = time.perf_counter()
        fn(n)
        best = max(best, n / (time.perf_counter() - t))
    return best


def ours() -> dict:
    import numpy as np

    import llm_roofline as lr

    lr.predict("llama-2-7b", "h100", weights="f16")
    compiled = lr.compile("llama-2-7b", "h100", weights="f16")

    def scalar(n):
        for i in range(n):
            lr.predict("llama-2-7b", "h100", weights="f16", batch=1 + i % 64, prompt=512, gen=256)

    def reused(n):
        for i in range(n):
            compiled.predict(batch=1 + i % 64, prompt=512, gen=256)

    grid = dict(batch=np.arange(1, 513)[:, None, None], context=np.geomspace(512, 131072, 64).round()[None, :, None],
                gen=np.geomspace(16, 4096, 32).round()[None, None, :], prompt=512)
    rng = np.random.default_rng(0)
    n_random = 1_000_000
    random = dict(batch=rng.integers(1, 513, n_random), prompt=rng.integers(1, 8193, n_random),
                  context=rng.integers(0, 131073, n_random), gen=rng.integers(1, 4097, n_random))
    lr.sweep("llama-2-7b", "h100", weights="f16", **grid)  # first touch of the memory
    lr.sweep("llama-2-7b", "h100", weights="f16", **random)
    out = {"predict": best_rate(scalar, 300), "compiled_predict": best_rate(reused, 300)}
    out["sweep_grid"] = best_rate(lambda n: lr.sweep("llama-2-7b", "h100", weights="f16", **grid), 1) * 512 * 64 * 32
    out["sweep_random"] = best_rate(lambda n: lr.sweep("llama-2-7b", "h100", weights="f16", **random), 1) * n_random
    out["version"] = lr.__version__
    return out


COMPARE = r"""
import time
t = time.perf_counter()
import llm_roofline as lr
from llm_roofline.hardware import hardware_ids
formats = ["f16", "bf16", "fp8", "int8", "int4", "q8_0", "q6_k", "q5_k_m", "q4_k_m", "q4_0"]
n = 0
for h in hardware_ids():
    for f in formats:
        lr.predict("llama-3.1-8b", h, weights=f)
        n += 1
print(n, time.perf_counter() - t)
"""


def compare_catalog() -> tuple[int, float]:
    best = None
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c", COMPARE], check=True, capture_output=True, text=True).stdout
        n, seconds = out.split()
        best = float(seconds) if best is None else min(best, float(seconds))
    return int(n), best


def cold_start(runs: int = 9) -> float:
    """A fresh interpreter per run, bytecode cached as an installed package has it (a shell's
    PYTHONDONTWRITEBYTECODE dropped; one untimed run writes the cache)."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    cmd = [sys.executable, "-m", "llm_roofline.cli", "predict", "llama-3.1-70b", "--hardware", "h100", "--json"]
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env=env)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def machine() -> str:
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or platform.machine()
    import os

    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def _best(runs: list[dict]) -> dict:
    """The highest rate of each figure over alternating runs."""
    return {k: max(r[k] for r in runs) if isinstance(runs[0][k], float) else runs[0][k] for k in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer-python", help="an interpreter with llm-analysis installed (default: this one)",
                        default=sys.executable)
    parser.add_argument("--repeats", type=int, default=3,
                        help="alternate runs of each tool (the best of all rounds counts), so that a slow spell of a "
                             "shared machine does not fall on one tool only")
    opts = parser.parse_args()
    peer_runs, our_runs = [], []
    for _ in range(opts.repeats):
        peer_runs.append(json.loads(subprocess.run([opts.peer_python, "-c", PEER], check=True, capture_output=True,
                                                   text=True).stdout))
        our_runs.append(ours())
    peer, us = (_best(runs) for runs in (peer_runs, our_runs))
    n_compare, compare_s = compare_catalog()
    cold = cold_start()
    import numpy

    lines = [
        f"## {datetime.date.today()}: planning speed beside llm-analysis",
        "",
        f"`python benchmarks/planning_speed.py` on {machine()}; llm-roofline {us['version']}, "
        f"llm-analysis {peer['version']}, numpy {numpy.__version__}. Llama-2-7B on one H100 SXM, 16-bit, "
        f"prompt 512, gen 256, batch 1-64; best of {opts.repeats} alternating runs of 5 rounds each, both tools in "
        "the same run.",
        "",
        "| what | llm-roofline | llm-analysis | ratio |",
        "|---|---|---|---|",
        f"| scalar predictions/s (`predict()` / `infer()`) | {us['predict']:,.0f} | {peer['infer']:,.0f} | "
        f"{us['predict'] / peer['infer']:.2f}x |",
        f"| reused object (`compile(...).predict()` / `LLMAnalysis.inference()`) | {us['compiled_predict']:,.0f} | "
        f"{peer['inference']:,.0f} | {us['compiled_predict'] / peer['inference']:.2f}x |",
        f"| sweep, grid of 512 batches x 64 contexts x 32 lengths (configs/s) | {us['sweep_grid']:,.0f} | "
        f"{peer['grid']:,.0f} (a loop) | {us['sweep_grid'] / peer['grid']:,.0f}x |",
        f"| sweep, 1e6 random configurations (configs/s) | {us['sweep_random']:,.0f} | {peer['grid']:,.0f} (a loop) "
        f"| {us['sweep_random'] / peer['grid']:,.0f}x |",
        f"| compare: {n_compare} device x format predictions, fresh process | {compare_s:.2f} s | | |",
        f"| cold start, `llm-roofline predict llama-3.1-70b --hardware h100 --json` (median of 9) | {cold:.3f} s | | |",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
