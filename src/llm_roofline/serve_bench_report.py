"""serve-bench's results beside the prediction: the prediction for each load level, MBU, flat rows for CSV, and the
measured-against-predicted chart over concurrency."""

from __future__ import annotations

from pathlib import Path

from .serve_bench import Summary


def prediction(model: str, hardware: str, weights: str | None, engine: str | None, tp: int, batch: int,
               prompt: int, gen: int) -> dict:
    """What predict() says for the served model at one load level (batch = the level's concurrency)."""
    from .roofline import predict

    p = predict(model, hardware, weights=weights, engine=engine, tp=tp, batch=batch, prompt=prompt, gen=gen)
    return {"model": p.model.id, "hardware": p.hardware.id, "weights": p.workload.weights, "batch": batch,
            "tpot_floor_ms": p.decode.tpot_floor_ms, "tpot_ms": p.decode.tpot_ms,
            "ttft_floor_ms": p.prefill.ttft_floor_ms, "ttft_ms": p.prefill.ttft_ms,
            "bytes_per_step": p.decode.bytes_per_step, "bandwidth_gbps": p.hardware.bandwidth_gbps * tp}


def mbu(s: Summary) -> float | None:
    """Model bandwidth utilisation the measurement implies: the bytes one decode step of this batch reads (the
    prediction's), over the measured time per output token, as a fraction of the devices' bandwidth."""
    p, tpot = s.prediction, s.tpot_ms["mean"]
    if not p or not tpot:
        return None
    return p["bytes_per_step"] / (tpot / 1e3) / (p["bandwidth_gbps"] * 1e9)


def flat_row(s: Summary) -> dict:
    """One load level as one CSV row: every latency statistic in its own column."""
    row = {"load": s.load, "completed": s.completed, "failed": s.failed, "duration_s": s.duration_s,
           "request_throughput_rps": s.request_throughput_rps, "output_throughput_tok_s": s.output_throughput_tok_s,
           "goodput_rps": s.goodput_rps, "prompt_tokens_mean": s.prompt_tokens_mean,
           "output_tokens_mean": s.output_tokens_mean, "short": s.short}
    for metric in ("ttft_ms", "tpot_ms", "itl_ms", "e2el_ms"):
        for stat, value in getattr(s, metric).items():
            row[f"{metric}_{stat}"] = value
    p = s.prediction or {}
    for key in ("tpot_ms", "tpot_floor_ms", "ttft_ms", "ttft_floor_ms"):
        row[f"predicted_{key}"] = p.get(key)
    row["mbu"] = mbu(s)
    row["errors"] = "; ".join(s.errors)
    return row


def plot_levels(summaries: list[Summary], path: str | Path, title: str) -> Path:
    """TPOT and output throughput against the load: measured (mean, with p90), the estimate and the floor."""
    from .plots import pyplot, save_figure

    plt = pyplot()
    xs = list(range(len(summaries)))
    labels = [s.load.replace("concurrency ", "c=") for s in summaries]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    tpot = [s.tpot_ms["mean"] for s in summaries]
    p90 = [s.tpot_ms["p90"] for s in summaries]
    a.plot(xs, tpot, "o-", color="black", label="measured TPOT (mean)")
    a.plot(xs, p90, "o:", color="0.5", label="measured TPOT (p90)")
    b.plot(xs, [s.output_throughput_tok_s for s in summaries], "o-", color="black", label="measured")
    if all(s.prediction for s in summaries):
        est = [s.prediction["tpot_ms"] for s in summaries]
        floor = [s.prediction["tpot_floor_ms"] for s in summaries]
        a.plot(xs, est, "s--", color="tab:blue", label="estimate")
        a.plot(xs, floor, "^-.", color="tab:red", label="floor (ceiling)")
        batch = [s.prediction["batch"] for s in summaries]
        b.plot(xs, [n * 1e3 / t for n, t in zip(batch, est)], "s--", color="tab:blue", label="estimate (decode)")
        b.plot(xs, [n * 1e3 / t for n, t in zip(batch, floor)], "^-.", color="tab:red", label="ceiling (decode)")
    a.set_ylabel("ms per output token")
    b.set_ylabel("output tokens/s (all requests)")
    for ax in (a, b):
        ax.set_xticks(xs, labels)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    save_figure(fig, Path(path))
    plt.close(fig)
    return Path(path)
