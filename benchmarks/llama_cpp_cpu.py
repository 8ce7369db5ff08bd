"""llama.cpp on this CPU beside the roofline: GGUFs of two public models' shapes (random weights) in F16, Q8_0,
Q4_0 and Q4_K, each run llama-bench style through llama-cpp-python, against the machine's measured profile.

    python benchmarks/llama_cpp_cpu.py [--profile PROFILE.json] [--out DIR] [--depth 0] [--repeats 3]

Prints a Markdown section for docs/measure.md (date, machine, versions): per file and test, measured tok/s (mean
± sd), ceiling, estimate and error, MBU for tg. Without --profile it measures one (`llm-roofline measure`). The
GGUFs are written under --out (default a temporary directory: several GB) and removed afterwards unless --keep.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from llm_roofline.measure import synthetic_gguf
from llm_roofline.measure.llama_bench import bench_llama_cpp
from planning_speed import machine  # benchmarks/ is the script's own directory on sys.path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", help="a measured profile JSON (default: measure one now)")
    parser.add_argument("--out", help="where to write the GGUFs (default: a temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the GGUFs")
    parser.add_argument("--depth", default="0", help="KV depths, comma-separated (default 0)")
    parser.add_argument("--prompt", type=int, default=512)
    parser.add_argument("--gen", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", default="qwen,llama", help="qwen (Qwen2.5-0.5B's shapes), llama (Llama-3.2-1B's)")
    parser.add_argument("--types", default=",".join(synthetic_gguf.TYPES))
    opts = parser.parse_args()
    out = Path(opts.out or tempfile.mkdtemp(prefix="llama-bench-"))
    out.mkdir(parents=True, exist_ok=True)
    profile = opts.profile
    if profile is None:
        profile = str(out / "profile.json")
        subprocess.run([sys.executable, "-m", "llm_roofline.cli", "measure", "--device", "cpu", "--out", profile,
                        "--json"], check=True, capture_output=True)
    dims = {"qwen": synthetic_gguf.QWEN25_05B, "llama": synthetic_gguf.LLAMA32_1B}
    depths = tuple(int(d) for d in opts.depth.split(","))
    results = []
    import os

    import llama_cpp  # noqa: F401 - its version goes in the table

    from llm_roofline.measure.llama_kernels import describe

    threads = os.cpu_count() or 1
    # llama.cpp's kernels on the reference files (generic shapes, none of the benchmarked models'), measured again
    # right before each file: a shared VM's speed drifts by tens of percent over minutes
    try:
        for key in opts.models.split(","):
            for qtype in opts.types.split(","):
                path = synthetic_gguf.write(out / f"{dims[key].name}-{qtype}.gguf", dims[key], qtype)
                r = bench_llama_cpp(path, profile, opts.prompt, opts.gen, depths, threads, opts.repeats)
                r["file_type"] = qtype
                results.append(r)
                print(json.dumps(r), file=sys.stderr)
                if not opts.keep:
                    path.unlink()
    finally:
        if not opts.keep and not opts.out:
            shutil.rmtree(out, ignore_errors=True)
    import importlib.metadata as md

    prof = json.loads(Path(profile).read_text()) if Path(profile).exists() else {}
    lines = [f"## {datetime.date.today()}: llama.cpp on this CPU (bench --engine llama.cpp)", "",
             f"`python benchmarks/llama_cpp_cpu.py` on {machine()}; llama-cpp-python {llama_cpp.__version__}, gguf "
             f"{md.version('gguf')}; profile bandwidth {prof.get('bandwidth_gbps', 0):,.1f} GB/s; "
             f"{results[0]['threads'] if results else '?'} threads, {opts.repeats} runs each (mean ± sd). "
             "Random weights in the shapes of Qwen2.5-0.5B and Llama-3.2-1B (tied embeddings; Q8_0 embedding and "
             "head in the quantised files, Q4_K's rows that are not whole 256-blocks in Q5_0, as llama-quantize "
             "does). The estimate takes llama.cpp's own kernel rates, measured right before each file on "
             "reference files of other shapes (1024 and 2048 wide); the first file's: "
             f"{describe(results[0]['kernels']) if results else '-'}.", "",
             "| file | GB | test | measured tok/s | ceiling | estimate | error | MBU | bound |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        for row in r["rows"]:
            mbu = f"{row['mbu']:.2f}" if "mbu" in row else ""
            lines.append(f"| {r['model']} | {r['weight_bytes'] / 1e9:.2f} | {row['test']} @ d{row['depth']} | "
                         f"{row['measured_tok_s']:,.1f} ± {row['measured_sd_tok_s']:,.1f} | "
                         f"{row['ceiling_tok_s']:,.1f} | {row['estimate_tok_s']:,.1f} | {row['error_pct']:+.0f}% | "
                         f"{mbu} | {row['bound']} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
