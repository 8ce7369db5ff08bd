"""`llm-roofline serve-bench URL`: a running OpenAI-compatible server measured, beside the prediction for it."""

from __future__ import annotations

import os
from typing import Annotated, Optional

import typer

from .cli_common import Flag, JsonOpt, _console, _print_json, check_outputs, parse_values
from .errors import UserError


def serve_bench(
    url: Annotated[str, typer.Argument(help="The server, e.g. http://127.0.0.1:8000 (its /v1/completions).")],
    model: Annotated[Optional[str], typer.Option(help="Served model name (default: the first /v1/models lists).")]
    = None,
    chat: Annotated[bool, Flag("--chat", help="Use /v1/chat/completions instead of /v1/completions.")] = False,
    prompt: Annotated[int, typer.Option(help="Prompt length in tokens (a repeated word; the server's usage "
                                        "reports what it counted).")] = 512,
    gen: Annotated[int, typer.Option(help="Output tokens per request (max_tokens, EOS suppressed where the "
                                     "server allows).")] = 128,
    num_prompts: Annotated[int, typer.Option("--num-prompts", help="Requests per load level.")] = 50,
    warmup: Annotated[int, typer.Option(help="Warm-up requests before measuring.")] = 2,
    concurrency: Annotated[list[str], typer.Option(help="Closed-loop clients per level, e.g. 1,2,4,8.")]
    = ["1"],  # noqa: B006
    rate: Annotated[Optional[float], typer.Option(help="Poisson arrivals at this many requests/s instead.")] = None,
    burstiness: Annotated[float, typer.Option(help="Gamma shape of the inter-arrival times (1: Poisson; lower: "
                                              "burstier).")] = 1.0,
    slo: Annotated[Optional[str], typer.Option(help="Goodput targets, e.g. ttft_ms=500,tpot_ms=50.")] = None,
    api_key_env: Annotated[str, typer.Option("--api-key-env", help="Environment variable holding the API key "
                                             "(never printed or saved).")] = "OPENAI_API_KEY",
    timeout: Annotated[float, typer.Option(help="Seconds a whole request may take (first byte to [DONE]).")]
    = 600.0,
    stall_timeout: Annotated[float, typer.Option("--stall-timeout", help="Seconds without a byte after which a "
                                                 "stream counts as stopped.")] = 60.0,
    predict_model: Annotated[Optional[str], typer.Option("--predict-model", help="Set the prediction beside it: "
                                                         "the served model's catalog id, config or GGUF.")] = None,
    hardware: Annotated[Optional[str], typer.Option("--hardware", "-H", help="The server's device (catalog id or "
                                                    "a measured profile) for the prediction.")] = None,
    weights: Annotated[Optional[str], typer.Option(help="The served weights' format, for the prediction.")] = None,
    engine: Annotated[Optional[str], typer.Option(help="The server's engine profile, for the prediction.")] = None,
    tp: Annotated[int, typer.Option("--tp", help="Tensor-parallel devices, for the prediction.")] = 1,
    out: Annotated[Optional[str], typer.Option("--out", help="Write the results to FILE.json, rewritten after "
                                               "each load level (an interrupted run keeps what it measured).")]
    = None,
    csv: Annotated[Optional[str], typer.Option("--csv", help="Write one row per load level to FILE.csv, rewritten "
                                               "after each level.")] = None,
    plot: Annotated[Optional[str], typer.Option(help="Chart of measured against predicted TPOT and throughput over "
                                                "the load levels (.png, .svg, .pdf).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Measure TTFT, TPOT, ITL and E2E latency (mean, median, p90, p99), throughput and goodput of a running
    OpenAI-compatible server at each load, with vLLM's definitions."""
    from . import serve_bench as sb
    from . import serve_bench_report as report
    from .compiled import check_workload

    check_workload(prompt=prompt, gen=gen, num_prompts=num_prompts)
    if warmup < 0 or warmup > 1000:
        raise UserError(f"--warmup must be 0..1000, got {warmup}")
    if rate is not None and not 0 < rate <= 1e5:
        raise UserError(f"--rate must be requests per second in (0, 1e5], got {rate}")
    if not 0 < burstiness <= 100:
        raise UserError(f"--burstiness must be in (0, 100], got {burstiness}")
    for option, seconds in (("--timeout", timeout), ("--stall-timeout", stall_timeout)):
        if not 0 < seconds <= 86400:
            raise UserError(f"{option} must be seconds in (0, 86400], got {seconds}")
    levels = parse_values(concurrency, "--concurrency")
    if max(levels) > 4096:
        raise UserError(f"--concurrency goes up to 4096 clients, got {max(levels)}")
    slos = sb.parse_slo(slo)
    sb.endpoint(url, chat)
    check_outputs(csv, plot)
    if out:
        from .files import check_output_path

        check_output_path(out, "--out", (".json",))
    if (predict_model is None) != (hardware is None):
        raise UserError("the prediction needs both --predict-model and --hardware")
    if predict_model is not None:  # checked before any request is sent
        report.prediction(predict_model, hardware, weights, engine, tp, 1, prompt, gen)
    key = os.environ.get(api_key_env) or None
    name = sb.check_model(url, model, key)
    cfg = sb.BenchConfig(url, name, chat, prompt, gen, num_prompts, warmup, tuple(levels), rate, burstiness, slos,
                         key, timeout, stall_timeout)
    batches = [c or 1 for _, c, _ in cfg.levels()]  # a rate's prediction: one sequence at a time

    def with_prediction(summaries):
        if predict_model is None:
            return summaries
        from dataclasses import replace

        return [s if s.prediction else replace(s, prediction=report.prediction(
            predict_model, hardware, weights, engine, tp, b, round(s.prompt_tokens_mean or prompt), gen))
            for s, b in zip(summaries, batches)]

    def document(summaries) -> dict:
        return {"url": url, "model": name, "endpoint": sb.endpoint(url, chat), "prompt_tokens": prompt, "gen": gen,
                "slo": slos, "levels": [{**s.to_dict(), "mbu": report.mbu(s)} for s in summaries]}

    def write_level(summaries):  # after every level: what was measured survives an interruption
        summaries = with_prediction(summaries)
        if out:
            from .files import write_json

            write_json(out, document(summaries), indent=2)
        if csv:
            from .files import write_csv

            write_csv(csv, [report.flat_row(s) for s in summaries])

    from .cli_common import SourceProgress

    with SourceProgress("serve-bench") as bar:
        summaries = with_prediction(sb.run(cfg, on_level=write_level,
                                           progress=lambda label, done, total: bar(done, total, label)))
    if plot:
        report.plot_levels(summaries, plot, f"{name}: {prompt} in / {gen} out")
    if as_json:
        _print_json(document(summaries))
        return
    _table(summaries, name, sb.endpoint(url, chat), prompt, gen, num_prompts, slos, predict_model is not None)


def _table(summaries, name: str, where: str, prompt: int, gen: int, num_prompts: int, slos: dict,
           predicted: bool) -> None:
    from rich.table import Table

    from .serve_bench_report import mbu

    t = Table(title=f"{name} at {where}: {prompt} in / {gen} out, {num_prompts} requests a level",
              show_edge=False, pad_edge=False)
    cols = ["load", "ok", "req/s", "out tok/s", "TTFT ms mean/p99", "TPOT ms mean/p99", "ITL ms p99",
            "E2EL ms mean"]
    if slos:
        cols.append("goodput req/s")
    if predicted:
        cols += ["TPOT est/floor ms", "measured/floor", "MBU"]
    for c in cols:
        t.add_column(c, justify="left" if c == "load" else "right")

    def f(x, digits=1):
        return "-" if x is None else f"{x:,.{digits}f}"

    for s in summaries:
        row = [s.load, f"{s.completed}/{s.completed + s.failed}", f(s.request_throughput_rps, 2),
               f(s.output_throughput_tok_s), f"{f(s.ttft_ms['mean'])} / {f(s.ttft_ms['p99'])}",
               f"{f(s.tpot_ms['mean'], 2)} / {f(s.tpot_ms['p99'], 2)}", f(s.itl_ms["p99"], 2), f(s.e2el_ms["mean"])]
        if slos:
            row.append(f(s.goodput_rps, 2))
        if predicted:
            p = s.prediction
            ratio = s.tpot_ms["mean"] / p["tpot_floor_ms"] if s.tpot_ms["mean"] else None
            row += [f"{p['tpot_ms']:,.2f} / {p['tpot_floor_ms']:,.2f}", "-" if ratio is None else f"{ratio:,.2f}x",
                    f(mbu(s), 2)]
        t.add_row(*row)
    con = _console()
    con.print(t)
    for s in summaries:
        for e in s.errors:
            con.print(f"{s.load}: failed requests: {e}", highlight=False)
        if s.short:
            con.print(f"{s.load}: {s.short} of {s.completed} requests streamed fewer than {gen} tokens (the server "
                      "ignored ignore_eos/min_tokens, or cut them short); TPOT is per token streamed", highlight=False)
