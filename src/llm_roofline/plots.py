"""Roofline chart of a prediction: the device's two ceilings and every operator at its arithmetic intensity."""

from __future__ import annotations

import math
from pathlib import Path

from .files import write_atomically
from .roofline import Prediction

PLOT_SUFFIXES = (".png", ".svg", ".pdf")


def check_plot_path(path: str | Path) -> Path:
    """Refuse a bad destination before any work is done (files.check_output_path)."""
    from .files import check_output_path

    return check_output_path(path, "plot file", PLOT_SUFFIXES)


def save_figure(fig, path: Path) -> None:
    """Never a half-written picture (files.write_atomically)."""
    write_atomically(path, lambda tmp: fig.savefig(tmp, dpi=150, bbox_inches="tight"))


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plain_log_labels(*axes) -> None:
    """Log axes labelled with plain numbers at the decades only (minor labels crowd each other)."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    for axis in axes:
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
        axis.set_minor_formatter(NullFormatter())


def plot_roofline(p: Prediction, path: str | Path) -> Path:
    path = check_plot_path(path)
    plt = pyplot()
    hw = p.hardware
    bw = hw.bandwidth_gbps * 1e9
    fig, ax = plt.subplots(figsize=(8, 5.5))
    xs = [10 ** (i / 20) for i in range(-20, 91)]  # 0.1 .. 3e4 FLOP/byte
    ax.plot(xs, [bw * x for x in xs], color="0.6", lw=1, ls=":", label=f"bandwidth {hw.bandwidth_gbps:,.0f} GB/s")
    styles = ["-", "--", "-."]
    for i, (dtype, tflops) in enumerate((k, v) for k, v in hw.peak_tflops.items()
                                        if v and k in (hw.matmul_dtype, "fp16", "fp32")):
        peak = tflops * 1e12
        roof = [min(peak, bw * x) for x in xs]
        ax.plot(xs, roof, color="black", lw=1.5 if dtype == hw.matmul_dtype else 0.8, ls=styles[i % 3],
                label=f"{dtype} {tflops:,.1f} TFLOPS")
        ridge = peak / bw
        ax.axvline(ridge, color="0.8", lw=0.8)
        ax.annotate(f"ridge {ridge:,.0f}", (ridge, peak), textcoords="offset points", xytext=(4, -12), fontsize=7)
    for phase, marker, color in (("decode", "o", "tab:blue"), ("prefill", "^", "tab:red")):
        rows = [r for r in p.operators if r.phase == phase and r.flops > 0 and r.intensity_flop_per_byte]
        labels: dict[tuple[float, float], list[str]] = {}  # operators at the same spot share one label
        for r in rows:
            achieved = r.flops / (r.estimate_ms / 1e3)
            ax.scatter(r.intensity_flop_per_byte, achieved, marker=marker, color=color, s=30, zorder=3)
            key = (round(math.log10(r.intensity_flop_per_byte), 1), round(math.log10(achieved), 1))
            labels.setdefault(key, []).append(r.name)
        for (x, y), names in labels.items():
            ax.annotate(", ".join(names), (10**x, 10**y), textcoords="offset points",
                        xytext=(5, -10 if phase == "prefill" else 4), fontsize=6, color=color)
        ax.scatter([], [], marker=marker, color=color, label=f"{phase} operators (estimate)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP / byte)")
    ax.set_ylabel("attained FLOP/s")
    w = p.workload
    ax.set_title(f"{p.model.id} ({w.weights}) on {hw.name}\nbatch {w.batch}, prompt {w.prompt}, "
                 f"decode from depth {w.context}", fontsize=9)
    ax.grid(True, which="both", color="0.93")
    ax.legend(fontsize=7, loc="lower right")
    save_figure(fig, path)
    plt.close(fig)
    return path


def plot_sweep(results, path: str | Path, max_panels: int = 4) -> Path:
    """The serving trade-off chart: tok/s per user (x) against tok/s per device (y), one Pareto line per device
    and format over its batches and layouts, configurations that fit only; one panel per context."""
    import numpy as np

    from .sweeps import pareto_front

    path = check_plot_path(path)
    plt = pyplot()
    contexts = sorted({float(c) for r in results for c in np.unique(r.context)})[:max_panels]
    fig, axes = plt.subplots(1, len(contexts), figsize=(6.5 * len(contexts), 5), squeeze=False)
    groups: dict = {}
    for r in results:
        groups.setdefault((r.hardware, r.weights), []).append(r)
    for ax, ctx in zip(axes[0], contexts):
        for (hw, fmt), rs in groups.items():
            x = np.concatenate([r.estimate_tok_s[(r.context == ctx) & r.fits] for r in rs])
            y = np.concatenate([r.throughput_per_device_tok_s[(r.context == ctx) & r.fits] for r in rs])
            if not x.size:
                continue
            idx = pareto_front(x, y)
            ax.plot(x[idx], y[idx], marker="o", markersize=3, label=f"{hw} {fmt}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        plain_log_labels(ax.xaxis, ax.yaxis)
        ax.set_xlabel("decode tok/s per user (estimate)")
        ax.set_ylabel("decode tok/s per device")
        ax.set_title(f"{results[0].model}, context {ctx:,.0f}")
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    save_figure(fig, path)
    plt.close(fig)
    return path


def plot_compare(results, path: str | Path, max_bars: int = 60) -> Path:
    """Decode tok/s per sequence of each model / device / format: the estimate as a bar with its 80% range,
    the ceiling as a tick; fastest at the top."""
    path = check_plot_path(path)
    plt = pyplot()
    rows = results[:max_bars]
    fig, ax = plt.subplots(figsize=(8, 0.28 * len(rows) + 1.2))
    labels = [f"{p.model.id} · {min((p.hardware.id, *p.hardware.aliases), key=len)} · {p.workload.weights}"
              for p in rows]
    y = list(range(len(rows)))[::-1]
    est = [p.decode.estimate_tok_s for p in rows]
    lo = [p.decode.estimate_tok_s - p.decode.estimate_low_tok_s for p in rows]
    hi = [p.decode.estimate_high_tok_s - p.decode.estimate_tok_s for p in rows]
    ax.barh(y, est, xerr=[lo, hi], color=["tab:blue" if p.memory.fits else "0.75" for p in rows], ecolor="0.4",
            capsize=2, label="estimate (80% range); grey: does not fit")
    ax.scatter([p.decode.ceiling_tok_s for p in rows], y, marker="|", s=120, color="black", label="ceiling",
               zorder=3)
    ax.set_yticks(y, labels, fontsize=7)
    ax.set_xlabel("decode tok/s per sequence")
    ax.set_xscale("log")
    plain_log_labels(ax.xaxis)
    ax.grid(True, axis="x", which="both", color="0.93")
    ax.legend(fontsize=7, loc="lower right")
    save_figure(fig, path)
    plt.close(fig)
    return path
