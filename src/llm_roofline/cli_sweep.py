"""`llm-roofline sweep`: every device x format x layout x batch x context at once, and the serving trade-off."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .cli_common import (DEFAULT_HARDWARE, CategoryOpt, JsonOpt, KvCacheOpt, MinMemoryOpt, SourceProgress, _console,
                         _print_json, _split, check_outputs, parse_values)
from .errors import UserError
from .files import write_csv

TABLE_ROWS = 40  # the terminal shows the trade-off curves; every configuration goes to --csv / --json


def sweep(
    model: Annotated[str, typer.Argument(help="Catalog id, Hugging Face repo id, or path to a config.json / dir.")],
    hardware: Annotated[list[str], typer.Option("--hardware", "-H", help="Devices (comma-separated or repeated); "
                                                "`all` for the catalog.")] = [DEFAULT_HARDWARE],  # noqa: B006
    category: CategoryOpt = [],  # noqa: B006
    min_memory_gb: MinMemoryOpt = None,
    weights: Annotated[list[str], typer.Option(help="Weight formats, e.g. f16,q4_k_m (default: the checkpoint's "
                                               "dtype).")] = [],  # noqa: B006
    kv_cache: KvCacheOpt = None,
    batch: Annotated[list[str], typer.Option(help="Concurrent sequences: values and ranges, 1,8,64 or 1-512 "
                                             "(the powers of two between).")] = ["1-256"],  # noqa: B006
    context: Annotated[list[str], typer.Option(help="KV depth when decoding starts: 1k,8k,32k (k = 1024; "
                                               "default: the prompt).")] = [],  # noqa: B006
    prompt: Annotated[str, typer.Option(help="Prompt tokens per sequence (time to first token).")] = "512",
    gen: Annotated[str, typer.Option(help="Tokens generated per sequence.")] = "256",
    tp: Annotated[list[str], typer.Option("--tp", help="Tensor-parallel sizes, e.g. 1,2,4,8.")] = ["1"],  # noqa: B006
    pp: Annotated[list[str], typer.Option("--pp", help="Pipeline stages (layer split), e.g. 1,2.")] = ["1"],  # noqa: B006
    ep: Annotated[list[str], typer.Option("--ep", help="MoE: expert-parallel sizes, e.g. 1,8 (each paired with the "
                                                       "--tp sizes it is a multiple of).")] = ["1"],  # noqa: B006
    engine: Annotated[Optional[str], typer.Option(help="Engine whose fitted profile the estimate uses.")] = None,
    csv: Annotated[Optional[str], typer.Option("--csv", help="Write every configuration to FILE.csv.")] = None,
    plot: Annotated[Optional[str], typer.Option(help="Write the trade-off chart (tok/s per user against tok/s per "
                                                "device, one Pareto line per device and format) to "
                                                "FILE.png|svg|pdf.")] = None,
    html: Annotated[Optional[str], typer.Option("--html", help="Also write a self-contained HTML report to "
                                                "FILE.html (the trade-off chart inline).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Every configuration's per-user tok/s, throughput per device, TTFT, TPOT, memory and fit, in one vectorised
    evaluation per device, format and layout."""
    import numpy as np

    from .hardware import select_hardware
    from .sweeps import pareto_front, sweep_configs

    check_outputs(csv, plot, html)
    devices = select_hardware(_split(hardware, "--hardware"), _split(category) or None, min_memory_gb)
    formats = _split(weights, "--weights") or [None]
    batches = parse_values(batch, "--batch")
    contexts = parse_values(context, "--context", minimum=0) if context else None
    tps, pps, eps = parse_values(tp, "--tp"), parse_values(pp, "--pp"), parse_values(ep, "--ep")
    prompt_n, gen_n = parse_values([prompt], "--prompt"), parse_values([gen], "--gen")
    if len(prompt_n) != 1 or len(gen_n) != 1:
        raise UserError("--prompt and --gen take one value each; sweep them with separate runs")
    with SourceProgress("sweep") as progress:
        results = sweep_configs(model, devices, weights=formats, tp=tps, pp=pps, ep=eps,
                                batch=np.array(batches)[:, None], context=None if contexts is None else
                                np.array(contexts)[None, :], prompt=prompt_n[0], gen=gen_n[0], kv_cache=kv_cache,
                                engine=engine, progress=progress)
    records = [r for res in results for r in res.records()]
    if csv:
        write_csv(csv, records)
    if plot:
        from .plots import plot_sweep

        plot_sweep(results, plot)
    fit = [r for r in records if r["fits"]]
    if html:
        from .plots import plot_sweep
        from .report import svg_of, table, write_html

        cols = ["hardware", "weights", "context", "tp", "pp", "ep", "batch", "estimate_tok_s", "throughput_per_device_tok_s",
                "ttft_ms", "tpot_ms", "memory_gb", "fits"]
        rows = [[f"{r[c]:,.1f}" if isinstance(r[c], float) else r[c] for c in cols] for r in records[:5000]]
        write_html(html, f"sweep: {results[0].model}", [
            ("p", f"{len(records):,} configurations, {len(fit):,} fit"), ("html", svg_of(plot_sweep, results)),
            ("html", table(cols, rows))])
    if as_json:
        _print_json(records)
        return
    from rich.table import Table

    lines: dict = {}
    for r in fit:
        lines.setdefault((r["hardware"], r["weights"], r["context"]), []).append(r)
    front = []
    for key, rows in lines.items():
        idx = pareto_front([r["estimate_tok_s"] for r in rows], [r["throughput_per_device_tok_s"] for r in rows])
        front += [rows[i] for i in idx]
    front.sort(key=lambda r: (r["hardware"], r["weights"], r["context"], -r["estimate_tok_s"]))
    t = Table(title=f"{results[0].model}: {len(records):,} configurations, {len(fit):,} fit; the trade-off curve "
                    f"of each device, format and context (every configuration: --csv, --json)",
              show_edge=False, pad_edge=False)
    for col in ("device", "weights", "context", "tp", "pp", "ep", "batch", "tok/s/user", "tok/s/device", "TTFT ms",
                "TPOT ms", "GB/device"):
        t.add_column(col, justify="left" if col in ("device", "weights") else "right")
    for r in front[:TABLE_ROWS]:
        t.add_row(r["hardware"], r["weights"], f"{r['context']:,.0f}", str(r["tp"]), str(r["pp"]), str(r["ep"]),
                  f"{r['batch']:,.0f}", f"{r['estimate_tok_s']:,.1f}", f"{r['throughput_per_device_tok_s']:,.0f}",
                  f"{r['ttft_ms']:,.0f}", f"{r['tpot_ms']:,.1f}", f"{r['memory_gb']:,.1f}")
    con = _console()
    con.print(t)
    if len(front) > TABLE_ROWS:
        con.print(f"... {len(front) - TABLE_ROWS} more points on the curves; --csv FILE has every configuration")
    if not fit:
        con.print("no configuration fits in memory; add devices (--tp, --pp) or fewer bits (--weights)")
