"""`llm-roofline plan`: the cheapest deployments that meet latency targets under a load."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .cli_common import (CategoryOpt, Flag, JsonOpt, KvCacheOpt, MinMemoryOpt, SourceProgress, _console, _print_json,
                         _split, check_outputs)
from .errors import UserError

TABLE_ROWS = 20


def _prices(values: list[str]) -> dict[str, float]:
    out = {}
    for item in _split(values, "--price"):
        name, sep, usd = item.partition("=")
        try:
            out[name.strip()] = float(usd)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise UserError(f"--price takes DEVICE=USD_PER_HOUR (e.g. h100=2.49), got {item!r}")
    return out


def plan(
    model: Annotated[str, typer.Argument(help="Catalog id, Hugging Face repo id, or path to a config.json / dir.")],
    hardware: Annotated[list[str], typer.Option("--hardware", "-H", help="Candidate devices (comma-separated or "
                                                "repeated); `all` for the catalog.")] = ["h100"],  # noqa: B006
    category: CategoryOpt = [],  # noqa: B006
    min_memory_gb: MinMemoryOpt = None,
    weights: Annotated[list[str], typer.Option(help="Candidate weight formats (default: the checkpoint's dtype).")]
    = [],  # noqa: B006
    prompt: Annotated[int, typer.Option(help="Prompt tokens per request.")] = 1024,
    gen: Annotated[int, typer.Option(help="Output tokens per request.")] = 256,
    rate: Annotated[Optional[float], typer.Option(help="Load: requests per second (Poisson arrivals).")] = None,
    users: Annotated[Optional[int], typer.Option(help="Load: concurrent users, each with one request at a "
                                                 "time (default: one user).")] = None,
    tpot_ms: Annotated[Optional[float], typer.Option("--tpot-ms", help="Target: time per output token, at "
                                                     "most (ms).")] = None,
    min_tok_s: Annotated[Optional[float], typer.Option("--min-tok-s", help="Target: decode tok/s per user, at "
                                                       "least.")] = None,
    ttft_ms: Annotated[Optional[float], typer.Option("--ttft-ms", help="Target: time to first token, at most "
                                                     "(ms).")] = None,
    max_devices: Annotated[int, typer.Option("--max-devices", help="Most devices per configuration (tp x pp x "
                                             "replicas).")] = 8,
    engine: Annotated[Optional[str], typer.Option(help="Engine whose fitted profile the estimate uses.")] = None,
    scheduler: Annotated[str, typer.Option(help="Batching under --rate: chunked (vLLM V1: decodes first, prompts "
                                                "in chunks filling --token-budget per iteration) or prefill-first "
                                                "(waiting prompts in a pass of their own).")] = "chunked",
    token_budget: Annotated[Optional[int], typer.Option("--token-budget", help="Tokens per iteration under the "
                                                        "chunked scheduler (vLLM's max_num_batched_tokens; "
                                                        "default: vLLM's, 8192 on H100/H200, else 2048).")] = None,
    kv_cache: KvCacheOpt = None,
    price: Annotated[list[str], typer.Option(help="USD per device hour, DEVICE=USD (repeat); overrides the "
                                             "shipped public prices.")] = [],  # noqa: B006
    csv: Annotated[Optional[str], typer.Option("--csv", help="Write every feasible configuration to FILE.csv.")]
    = None,
    markdown: Annotated[bool, Flag("--markdown", help="Print the table as Markdown.")] = False,
    html: Annotated[Optional[str], typer.Option("--html", help="Also write a self-contained HTML report to "
                                                "FILE.html.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Search device x count x tp/pp x format for the configurations that meet every target, cheapest first,
    with the cost per million output tokens and the target that binds."""
    from .hardware import select_hardware
    from .plan import plan as run

    check_outputs(csv=csv, html=html)
    devices = select_hardware(_split(hardware, "--hardware"), _split(category) or None, min_memory_gb)
    with SourceProgress("plan") as progress:
        result = run(model, devices, weights=_split(weights, "--weights") or None, prompt=prompt, gen=gen,
                     rate=rate, users=users, tpot_ms=tpot_ms, min_tok_s=min_tok_s, ttft_ms=ttft_ms,
                     max_devices=max_devices, engine=engine, kv_cache=kv_cache, prices=_prices(price),
                     scheduler=scheduler, token_budget=token_budget, progress=progress)
    if csv and result.configs:
        from .files import write_csv

        write_csv(csv, [{k: v for k, v in c.to_dict().items() if k != "misses"} for c in result.configs])
    if as_json:
        _print_json(result.to_dict())
        return
    load = (f"{result.load['rate_rps']:g} requests/s" if "rate_rps" in result.load
            else f"{result.load['users']} concurrent user{'s' if result.load['users'] != 1 else ''}")
    wanted = ", ".join(f"{k} {'>=' if k == 'min_tok_s' else '<='} {v:g}" for k, v in result.targets.items())
    title = (f"{result.model}: {load} of {prompt} in / {gen} out" + (f"; {wanted}" if wanted else "")
             + f" ({len(result.configs)} of {result.candidates} configurations meet it)")
    header = ("device", "devices", "tp", "pp", "ep", "replicas", "weights", "TPOT ms", "TTFT ms", "tok/s/user",
              "out tok/s", "$/h", "$/Mtok", "binds")
    rows = [(c.hardware, str(c.devices), str(c.tp), str(c.pp), str(c.ep), str(c.replicas), c.weights, f"{c.tpot_ms:,.1f}",
             f"{c.ttft_ms:,.0f}", f"{c.tok_s_per_user:,.1f}", f"{c.throughput_tok_s:,.0f}",
             "-" if c.cost_per_hour_usd is None else f"{c.cost_per_hour_usd:,.2f}",
             "-" if c.cost_per_mtok_usd is None else f"{c.cost_per_mtok_usd:,.2f}", c.binding)
            for c in result.configs[:TABLE_ROWS]]
    if html:
        from .report import table, write_html

        write_html(html, title, [("html", table(header, rows))] + [("p", n) for n in result.notes])
    con = _console()
    if not rows:
        con.print(title, highlight=False)
    elif markdown:
        import sys

        lines = [title, "", "| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        sys.stdout.write("\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n")
    else:
        from rich.table import Table

        t = Table(title=title, show_edge=False, pad_edge=False)
        for col in header:
            t.add_column(col, justify="left" if col in ("device", "weights", "binds") else "right")
        for r in rows:
            t.add_row(*r)
        con.print(t)
    if result.nearest is not None:
        n = result.nearest
        why = "; ".join("cannot keep up with the load (requests queue)" if k == "load" else
                        f"{k} {'below' if k == 'min_tok_s' else 'over'} target by {100 * (v - 1):.0f}%"
                        for k, v in ((k, v if v is not None else float('inf')) for k, v in n.misses.items()))
        con.print(f"no configuration meets every target; nearest: {n.devices}x {n.hardware} (tp {n.tp}, pp {n.pp}, "
                  f"ep {n.ep}, "
                  f"{n.weights}): {why}", highlight=False)
    for note in result.notes:
        con.print(note, highlight=False)
    if result.configs and result.configs[0].price_source:
        con.print(f"prices: {result.configs[0].price_source}", highlight=False)
