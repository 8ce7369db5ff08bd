"""Pictures of a measured profile (the empirical roofline) and of a bench run (measured against predicted)."""

from __future__ import annotations

from ..plots import check_plot_path, pyplot, save_figure


def plot_profile(profile: dict, path) -> None:
    path = check_plot_path(path)
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 5))
    bw = profile["bandwidth"]
    ax1.plot([r["bytes"] / 2**20 for r in bw], [r["read_gbps"] for r in bw], "o-", label="read")
    ax1.plot([r["bytes"] / 2**20 for r in bw], [r["copy_gbps"] for r in bw], "s--", label="copy (read + write)")
    llc = profile["machine"].get("last_level_cache_bytes")
    if llc:
        ax1.axvline(llc / 2**20, color="0.7", lw=1)
        ax1.annotate("last-level cache", (llc / 2**20, ax1.get_ylim()[1] * 0.9), fontsize=7)
    ax1.set_xscale("log")
    ax1.set_xlabel("buffer (MiB)")
    ax1.set_ylabel("GB/s")
    ax1.set_title("memory bandwidth by buffer size", fontsize=9)
    ax1.legend(fontsize=7)
    ax1.grid(True, which="both", color="0.93")
    peak_bw = profile["bandwidth_gbps"]
    xs = [10 ** (i / 10) for i in range(-10, 31)]
    for dtype, style in (("fp32", "-"), ("bf16", "--")):
        peak = profile["peak_tflops"].get(dtype)
        if peak:
            ax2.plot(xs, [min(peak * 1e3, peak_bw * x) for x in xs], color="black", ls=style,
                     label=f"{dtype} roof: {peak:,.2f} TFLOPS, {peak_bw:,.1f} GB/s")
        rows = [r for r in profile["roofline"] if r["dtype"] == dtype and r.get("aspect", 1.0) == 1.0]
        sizes = sorted({r.get("matrix_bytes", 0) for r in rows})
        for i, size in enumerate(sizes):  # one line per matrix size: more vectors, more FLOPs per byte
            line = [r for r in rows if r.get("matrix_bytes", 0) == size]
            label = (f"{dtype}: {sizes[0] / 2**20:g}-{sizes[-1] / 2**20:g} MiB matrices x 1..{line[-1]['vectors']} "
                     "vectors (measured)") if i == 0 else None
            ax2.plot([r["intensity_flop_per_byte"] for r in line], [r["gflops"] for r in line], "o" + style,
                     color="tab:blue" if dtype == "fp32" else "tab:orange", alpha=0.4 + 0.6 * (i + 1) / len(sizes),
                     ms=3, label=label)
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel("arithmetic intensity (FLOP / byte)")
    ax2.set_ylabel("GFLOP/s")
    ax2.set_title("empirical roofline: batching a weight read", fontsize=9)
    ax2.legend(fontsize=7)
    ax2.grid(True, which="both", color="0.93")
    fig.suptitle(profile["name"], fontsize=9)
    save_figure(fig, path)
    plt.close(fig)


def plot_bench(result: dict, path) -> None:
    path = check_plot_path(path)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    rows = result["rows"]
    b = [r["batch"] for r in rows]
    ax.plot(b, [r["ceiling_tok_s"] * r["batch"] for r in rows], "k--", label="ceiling")
    ax.plot(b, [r["estimate_tok_s"] * r["batch"] for r in rows], "o-", label="estimate (from the profile)")
    ax.plot(b, [r["measured_throughput_tok_s"] for r in rows], "s-", label="measured")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch")
    ax.set_ylabel("decode tokens/s over the batch")
    ax.set_title(f"{result['model']} ({result['weights']}) on {result['device']}", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(True, which="both", color="0.93")
    save_figure(fig, path)
    plt.close(fig)


def plot_llama_bench(result: dict, path) -> None:
    """llama.cpp's pp and tg at each depth: measured (with its spread), estimate and ceiling, side by side."""
    path = check_plot_path(path)
    plt = pyplot()
    rows = result["rows"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    x = range(len(rows))
    ax.bar([i - 0.27 for i in x], [r["ceiling_tok_s"] for r in rows], 0.27, color="0.8", label="ceiling")
    ax.bar(x, [r["estimate_tok_s"] for r in rows], 0.27, label="estimate (from the profile)")
    ax.bar([i + 0.27 for i in x], [r["measured_tok_s"] for r in rows], 0.27,
           yerr=[r["measured_sd_tok_s"] for r in rows], capsize=2, label="measured (mean ± sd)")
    ax.set_xticks(list(x), [f"{r['test']} @ d{r['depth']}" for r in rows], fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("tokens/s")
    ax.set_title(f"{result['model']} ({result['weights']}), llama.cpp, {result['threads']} threads", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(True, axis="y", which="both", color="0.93")
    save_figure(fig, path)
    plt.close(fig)
