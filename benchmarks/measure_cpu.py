"""Measure this machine, bench three catalog models, and check the bandwidth against an independent tool.

    python benchmarks/measure_cpu.py [--quick] [--out docs/measure-results.md]

1. `llm-roofline measure --device cpu` -> docs/img/profile-cpu.png and the profile JSON (benchmarks/out/)
2. `likwid-bench -t load_avx512` (or load_avx / load) over a 2 GB buffer on all cores, in the same run:
   an independent large-buffer read bandwidth (Debian package likwid), compared with ours
3. `llm-roofline bench` for smollm2-135m, qwen2.5-0.5b and llama-3.2-1b in f32 and bf16 at batch 1 and 8:
   measured tokens/s beside the estimate from the profile alone. A shared VM's speed drifts by tens of percent
   over minutes, so the profile is measured again right before each model (--one-profile: the first for all)
Writes a markdown results section (date, machine, versions, every figure) for docs/measure.md.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
from pathlib import Path

from llm_roofline.measure.bench import bench
from llm_roofline.measure.micro import measure
from llm_roofline.measure.plots import plot_bench, plot_profile

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
MODELS = ("smollm2-135m", "qwen2.5-0.5b", "llama-3.2-1b")


def likwid_read_gbps() -> tuple[float | None, str]:
    tool = shutil.which("likwid-bench")
    if not tool:
        return None, "likwid-bench not installed (apt-get install likwid)"
    listing = subprocess.run([tool, "-a"], capture_output=True, text=True).stdout
    kernel = next((k for k in ("load_avx512", "load_avx", "load") if re.search(rf"^{k} ", listing, re.M)), "load")
    import os

    run = subprocess.run([tool, "-t", kernel, "-W", f"N:2GB:{os.cpu_count()}"], capture_output=True, text=True,
                         timeout=300)
    m = re.search(r"MByte/s:\s+([\d.]+)", run.stdout)
    return (float(m.group(1)) / 1e3 if m else None), f"likwid-bench -t {kernel} -W N:2GB:{os.cpu_count()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="quick profile (the bench itself is unchanged)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "measure-results.md")
    parser.add_argument("--gen", type=int, default=32)
    parser.add_argument("--one-profile", action="store_true", help="bench every model on the first profile")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    profile = measure("cpu", quick=args.quick)
    ours_before = profile["bandwidth_gbps"]
    likwid, how = likwid_read_gbps()
    (OUT / "profile-cpu.json").write_text(json.dumps(profile, indent=1) + "\n")
    plot_profile(profile, ROOT / "docs" / "img" / "profile-cpu.png")
    rows, reads = [], [ours_before]
    for model in MODELS:
        path = OUT / "profile-cpu.json"
        if model != MODELS[0] and not args.one_profile:
            path = OUT / f"profile-cpu-before-{model}.json"
            again = measure("cpu", quick=args.quick)
            path.write_text(json.dumps(again, indent=1) + "\n")
            reads.append(again["bandwidth_gbps"])
        read = reads[-1]
        for weights in ("f32", "bf16"):
            result = bench(model, "cpu", weights, (1, 8), prompt=32, gen=args.gen, hardware=path, repeats=3)
            if model == "qwen2.5-0.5b" and weights == "f32":
                plot_bench(result, ROOT / "docs" / "img" / "bench-qwen2.5-0.5b-f32.png")
            for r in result["rows"]:
                rows.append((model, weights, read, r))
                print(model, weights, r["batch"], f"{r['measured_tok_s']:.2f}", f"{r['estimate_tok_s']:.2f}",
                      f"{r['error_pct']:+.1f}%", flush=True)
    m = profile["machine"]
    errors = [abs(r["error_pct"]) for *_, r in rows]
    lines = [
        f"Run on {m['date']}: {m['cpu_model']}, {m['cpu_cores']} cores ({m['torch_threads']} PyTorch threads), "
        f"last-level cache {m['last_level_cache_bytes'] / 2**20:,.0f} MiB, {m['memory_bytes'] / 2**30:,.1f} GiB; "
        f"{m['platform']}; Python {m['python']}, PyTorch {m['torch']}, numpy {m.get('numpy')}; "
        f"profile {'--quick' if args.quick else 'full'}.",
        "",
        "### Bandwidth against an independent tool (same run)",
        "",
        "| tool | large-buffer read GB/s |",
        "|---|---|",
        f"| `llm-roofline measure` (streaming read, a sum over {profile['bandwidth'][-1]['bytes'] / 2**20:,.0f} MiB) | "
        f"{ours_before:.1f} (min-max {profile['bandwidth_spread_gbps'][0]:.1f}-{profile['bandwidth_spread_gbps'][1]:.1f}) |",
        f"| `{how}` | {likwid:.1f} |" if likwid else f"| {how} | - |",
        "",
        (f"Difference: {100 * (ours_before - likwid) / likwid:+.1f}% of likwid-bench." if likwid else ""),
        "",
        "### Decode: estimate from the profile against measured (transformers eager, static KV cache)",
        "",
        f"Prompt 32 tokens, {args.gen} generated, 3 repeats after a warm-up, median step time; random weights with "
        "the catalog architecture; "
        + ("one profile for every model." if args.one_profile else
           "the profile measured again right before each model (read " + ", ".join(f"{r:.1f}" for r in reads)
           + " GB/s)."),
        "",
        "The last column is the memory's read rate timed right after the row, against the profile's in the "
        "first: how far the machine had drifted from what the estimate was told.",
        "",
        "| model | weights | batch | ceiling tok/s | estimate tok/s | measured tok/s | error % | MBU | TTFT ms "
        "| read GB/s: profile, after |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for model, weights, read, r in rows:
        lines.append(f"| {model} | {weights} | {r['batch']} | {r['ceiling_tok_s']:.1f} | {r['estimate_tok_s']:.1f} | "
                     f"{r['measured_tok_s']:.1f} | {r['error_pct']:+.1f} | {r['mbu']:.2f} | {r['ttft_ms']:.0f} | "
                     f"{read:.1f}, {r['read_gbps_after']:.1f} |")
    lines += ["", f"Median absolute error {sorted(errors)[len(errors) // 2]:.1f}%, worst {max(errors):.1f}% "
              f"({sum(e <= 15 for e in errors)} of {len(errors)} within 15%)."]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
