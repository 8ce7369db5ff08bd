"""The `llm-roofline` command: a thin layer over the Python API. Bad input: one line on stderr, exit code 2."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from .errors import UserError

app = typer.Typer(add_completion=True, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="How fast will model M run on hardware H, and why: a bandwidth-first roofline.")
hardware_app = typer.Typer(no_args_is_help=True, help="The device catalog.")
models_app = typer.Typer(no_args_is_help=True, help="The model catalog.")
app.add_typer(hardware_app, name="hardware")
app.add_typer(models_app, name="models")

from .cli_common import (DEFAULT_HARDWARE, CategoryOpt, Flag, JsonOpt, KvCacheOpt, MinMemoryOpt,  # noqa: E402
                         _console, _print_json, _split, check_outputs)


def _version(value: bool) -> None:
    if value:
        from . import __version__

        sys.stdout.write(f"llm-roofline {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, Flag("--version", callback=_version, is_eager=True,
                                                help="Print the version and exit.")] = False) -> None:
    """How fast will model M run on hardware H, and why: a bandwidth-first roofline."""


# ------------------------------------------------------------------------------------------------------ predict


@app.command()
def predict(
    model: Annotated[str, typer.Argument(help="Catalog id, Hugging Face repo id, or path to a config.json / dir.")],
    hardware: Annotated[str, typer.Option("--hardware", "-H", help="Device id or alias, or a profile JSON.")]
    = DEFAULT_HARDWARE,
    weights: Annotated[Optional[str], typer.Option(help="Weight format (default: the checkpoint's dtype).")] = None,
    kv_cache: KvCacheOpt = None,
    batch: Annotated[int, typer.Option(help="Concurrent sequences.")] = 1,
    prompt: Annotated[int, typer.Option(help="Prompt tokens per sequence (prefill).")] = 512,
    context: Annotated[Optional[int], typer.Option(help="KV depth when decoding starts (default: the prompt).")]
    = None,
    gen: Annotated[int, typer.Option(help="Tokens generated per sequence.")] = 256,
    tp: Annotated[int, typer.Option("--tp", help="Tensor-parallel devices (per pipeline stage).")] = 1,
    pp: Annotated[int, typer.Option("--pp", help="Pipeline stages: the layers split over this many devices "
                                                 "(llama.cpp's default on several GPUs); devices = tp x pp.")] = 1,
    ep: Annotated[int, typer.Option("--ep", help="MoE: expert-parallel devices per stage, a multiple of --tp (whole "
                                                 "experts spread over them, the rest in ep/tp data-parallel "
                                                 "replicas, all-to-all traffic); devices = ep x pp.")] = 1,
    engine: Annotated[Optional[str], typer.Option(help="Inference engine whose fitted efficiency profile the "
                                                       "estimate uses (llama.cpp-cuda, vllm, tensorrt-llm, ...).")]
    = None,
    bandwidth_efficiency: Annotated[Optional[float], typer.Option(help="Achievable fraction of peak bandwidth.")]
    = None,
    compute_efficiency: Annotated[Optional[float], typer.Option(help="Achievable fraction of peak FLOPS.")] = None,
    step_overhead_us: Annotated[Optional[float], typer.Option(help="Fixed cost per forward step, µs.")] = None,
    explain: Annotated[bool, Flag("--explain", help="Show the chain behind each figure.")] = False,
    plot: Annotated[Optional[str], typer.Option(help="Write the roofline chart to FILE.png|svg|pdf.")] = None,
    draft: Annotated[Optional[str], typer.Option(help="Speculative decoding: the draft model (catalog id or "
                                                 "config), or ngram for prompt-lookup drafts that cost no step.")]
    = None,
    draft_tokens: Annotated[int, typer.Option("--draft-tokens", "--spec-tokens", help="Tokens drafted per round "
                                              "(k).")] = 4,
    acceptance: Annotated[Optional[float], typer.Option(help="Chance a drafted token is accepted (measured, e.g. "
                                                        "vLLM's spec-decode acceptance rate).")] = None,
    mtp: Annotated[Optional[int], typer.Option(help="Speculative decoding with this many multi-token-prediction "
                                               "modules as the draft (DeepSeek-V3: 1).")] = None,
    routing_skew: Annotated[float, typer.Option("--routing-skew", help="MoE: Zipf exponent of expert popularity "
                                                "for the estimate (0: uniform routing).")] = 0.0,
    html: Annotated[Optional[str], typer.Option("--html", help="Also write a self-contained HTML report to "
                                                "FILE.html (inline charts, readable offline).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Decode and prefill speed, memory fit and the per-operator roofline of MODEL on a device."""
    from .roofline import predict as run

    check_outputs(plot=plot, html=html)
    p = run(model, hardware, weights=weights, kv_cache=kv_cache, batch=batch, prompt=prompt, context=context,
            gen=gen, tp=tp, pp=pp, engine=engine, bandwidth_efficiency=bandwidth_efficiency,
            compute_efficiency=compute_efficiency, step_overhead_us=step_overhead_us, draft=draft,
            draft_tokens=draft_tokens, acceptance=acceptance, routing_skew=routing_skew, mtp=mtp, ep=ep)
    if plot:
        from .plots import plot_roofline

        plot_roofline(p, plot)
    if html:
        _prediction_html(p, html)
    if as_json:
        data = p.to_dict()
        if explain:
            from .explain import explain as chain

            data["explain"] = chain(p)
        _print_json(data)
        return
    _show_prediction(p, explain)
    if plot:
        _console().print(f"roofline chart written to {plot}")


def _prediction_html(p, path: str) -> None:
    from .explain import explain as chain
    from .plots import plot_roofline
    from .report import svg_of, table, write_html

    d, f, m = p.decode, p.prefill, p.memory
    headline = table(["", "ceiling", "estimate", "80% range"], [
        ["decode tok/s per sequence", f"{d.ceiling_tok_s:,.1f}", f"{d.estimate_tok_s:,.1f}",
         f"{d.estimate_low_tok_s:,.1f} - {d.estimate_high_tok_s:,.1f}"],
        ["decode tok/s over the batch", f"{d.ceiling_throughput_tok_s:,.1f}", f"{d.estimate_throughput_tok_s:,.1f}", ""],
        ["TPOT (ms)", f"{d.tpot_floor_ms:,.2f}", f"{d.tpot_ms:,.2f}", ""],
        ["TTFT (ms)", f"{f.ttft_floor_ms:,.1f}", f"{f.ttft_ms:,.1f}", f"{f.ttft_low_ms:,.1f} - {f.ttft_high_ms:,.1f}"]])
    ops = table(["phase", "operator", "n", "GFLOP", "weight MB", "KV MB", "ceil ms", "est ms", "bound"],
                [[r.phase, r.name, r.count, f"{r.flops / 1e9:,.1f}", f"{r.weight_bytes / 1e6:,.0f}",
                  f"{r.kv_bytes / 1e6:,.1f}", f"{r.ceiling_ms:,.3f}", f"{r.estimate_ms:,.3f}", r.bound]
                 for r in p.operators])
    w = p.workload
    write_html(path, f"{p.model.id} ({w.weights}) on {p.hardware.name}", [
        ("p", f"batch {w.batch}, prompt {w.prompt}, decode {w.gen} tokens from KV depth {w.context}, tp {w.tp}, "
              f"pp {w.pp}" + (f", ep {w.ep}" if w.ep > 1 else "")), ("html", headline),
        ("p", f"memory per device {m.total_gb:,.1f} GB of {m.capacity_gb:,.0f} GiB: "
              + ("fits" if m.fits else f"does not fit (needs {m.min_devices or '>4096'} devices)")),
        ("h2", "Roofline"), ("html", svg_of(plot_roofline, p)), ("h2", "Operators"), ("html", ops),
        ("h2", "The arithmetic"), ("pre", "\n".join(chain(p) + [f"note: {n}" for n in p.notes]))])


def _show_prediction(p, explain: bool) -> None:
    from rich.table import Table

    con = _console()
    m, hw, w, d, pf, mem = p.model, p.hardware, p.workload, p.decode, p.prefill, p.memory
    con.print(f"[bold]{m.id}[/] ({m.params_total / 1e9:,.2f} B params"
              + (f", {m.params_active / 1e9:,.2f} B active" if m.params_active != m.params_total else "")
              + f"; {w.weights}: {m.weight_bytes / 1e9:,.1f} GB) on [bold]{hw.name}[/] "
              f"({hw.bandwidth_gbps:,.0f} GB/s, {hw.matmul_tflops or 0:,.1f} TFLOPS {hw.matmul_dtype})")
    con.print(f"batch {w.batch}, prompt {w.prompt}, decode {w.gen} tokens from KV depth {w.context}, "
              f"KV cache {w.kv_cache}" + (f", tensor parallel {w.tp}" if w.tp > 1 else "")
              + (f", layers split over {w.pp} devices" if w.pp > 1 else "")
              + (f", experts over {w.ep} devices" if w.ep > 1 else ""))
    t = Table(show_edge=False, pad_edge=False)
    t.add_column("")
    t.add_column("ceiling", justify="right")
    t.add_column("estimate", justify="right")
    t.add_column("80% range", justify="right")
    t.add_row("decode tok/s per sequence", f"{d.ceiling_tok_s:,.1f}", f"{d.estimate_tok_s:,.1f}",
              f"{d.estimate_low_tok_s:,.1f} - {d.estimate_high_tok_s:,.1f}")
    if w.batch > 1:
        t.add_row("decode tok/s over the batch", f"{d.ceiling_throughput_tok_s:,.1f}",
                  f"{d.estimate_throughput_tok_s:,.1f}")
    t.add_row("time per output token (ms)", f"{d.tpot_floor_ms:,.2f}", f"{d.tpot_ms:,.2f}")
    t.add_row("time to first token (ms)", f"{pf.ttft_floor_ms:,.1f}", f"{pf.ttft_ms:,.1f}",
              f"{pf.ttft_low_ms:,.1f} - {pf.ttft_high_ms:,.1f}")
    t.add_row("prefill tok/s", f"{pf.ceiling_tok_s:,.0f}", f"{pf.estimate_tok_s:,.0f}")
    sp = p.speculative
    if sp is not None:
        t.add_row(f"decode tok/s per sequence, speculative ({sp.draft}, k={sp.draft_tokens}, "
                  f"acceptance {sp.acceptance:g})", f"{sp.ceiling_tok_s:,.1f}", f"{sp.estimate_tok_s:,.1f}",
                  f"{sp.speedup:,.2f}x plain")
    con.print(t)
    kv = " (KV cache)" if d.memory_bound_by == "kv_cache" else " (weights)" if d.memory_bound_by else ""
    con.print(f"decode is [bold]{d.bound}-bound[/]{kv}: {d.bytes_per_step / 1e9:,.2f} GB and "
              f"{d.flops_per_step / 1e9:,.1f} GFLOP per step; prefill is [bold]{pf.bound}-bound[/]")
    status = "[green]fits[/]" if mem.fits else f"[red]DOES NOT FIT[/] (needs {mem.min_devices or '>4096'} devices)"
    con.print(f"memory{' per device' if mem.per_device else ''}: {mem.total_gb:,.1f} GB of {mem.capacity_gb:,.0f} GiB "
              f"({mem.capacity_gb * 1.073741824:,.1f} GB) "
              f"(weights {mem.weights_gb:,.1f}, KV {mem.kv_cache_gb:,.2f}, activations {mem.activations_gb:,.2f}, "
              f"runtime {mem.runtime_overhead_gb:,.1f}): {status}")
    e = p.efficiency
    unpack = (f", {e.unpack_cycles_per_weight:g} SM cycles per block-quantised weight in decode (x weights / "
              f"{p.hardware.sm_cycles_per_s / 1e9:,.0f}e9 SM cycles/s)"
              if e.unpack_cycles_per_weight and p.hardware.sm_cycles_per_s else "")
    con.print(f"estimate assumes {e.bandwidth:.0%} of peak bandwidth, {e.compute:.0%} of peak FLOPS and "
              f"{e.step_overhead_us:,.0f} µs per step{unpack} ({e.source})", style="dim")
    for phase in ("decode", "prefill"):
        ops = Table(title=f"{phase} step, per operator (all layers)", show_edge=False, pad_edge=False)
        for col in ("operator", "n", "GFLOP", "weight MB", "KV MB", "FLOP/B", "ceil ms", "est ms", "bound"):
            ops.add_column(col, justify="left" if col in ("operator", "bound") else "right")
        for r in (r for r in p.operators if r.phase == phase):
            ops.add_row(r.name, str(r.count), f"{r.flops / 1e9:,.1f}", f"{r.weight_bytes / 1e6:,.0f}",
                        f"{r.kv_bytes / 1e6:,.1f}",
                        f"{r.intensity_flop_per_byte:,.1f}" if r.intensity_flop_per_byte else "-",
                        f"{r.ceiling_ms:,.3f}", f"{r.estimate_ms:,.3f}", r.bound)
        con.print(ops)
    for note in p.notes:
        con.print(f"note: {note}", style="yellow", soft_wrap=True)
    if explain:
        from .explain import explain as chain

        con.print()
        for line in chain(p):
            con.print(line, highlight=False, soft_wrap=True)


# ------------------------------------------------------------------------------------------------------ sweep

from .cli_plan import plan as _plan  # noqa: E402
from .cli_serve import serve_bench as _serve_bench  # noqa: E402
from .cli_sweep import sweep as _sweep  # noqa: E402

app.command(name="sweep")(_sweep)
app.command(name="plan")(_plan)
app.command(name="serve-bench")(_serve_bench)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind (127.0.0.1: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """The web calculator and its JSON API (/api/predict, /api/compare, /api/sweep) on a local port."""
    try:
        import uvicorn

        from .web.app import create_app
    except ImportError:
        raise UserError("the web calculator needs its extra: pip install 'llm-roofline[web]'") from None
    if not 0 < port < 65536:
        raise UserError(f"--port must be 1..65535, got {port}")
    if host not in ("127.0.0.1", "localhost", "::1"):
        sys.stderr.write(f"llm-roofline: serving on {host}: reachable from other machines\n")
    uvicorn.run(create_app(), host=host, port=port, log_level="warning")


# ------------------------------------------------------------------------------------------------------ compare


@app.command()
def compare(
    models: Annotated[list[str], typer.Argument(help="One or more models.")],
    hardware: Annotated[list[str], typer.Option("--hardware", "-H", help="Devices (repeat or comma-separate); "
                                                "`all` for the catalog.")] = [DEFAULT_HARDWARE],  # noqa: B006
    category: CategoryOpt = [],  # noqa: B006
    min_memory_gb: MinMemoryOpt = None,
    weights: Annotated[list[str], typer.Option(help="Weight formats (repeat or comma-separate).")] = [],  # noqa: B006
    kv_cache: KvCacheOpt = None,
    batch: Annotated[int, typer.Option(help="Concurrent sequences.")] = 1,
    prompt: Annotated[int, typer.Option(help="Prompt tokens per sequence.")] = 512,
    context: Annotated[Optional[int], typer.Option(help="KV depth when decoding starts (default: the prompt).")]
    = None,
    gen: Annotated[int, typer.Option(help="Tokens generated per sequence.")] = 256,
    tp: Annotated[int, typer.Option("--tp", help="Tensor-parallel devices (per pipeline stage).")] = 1,
    pp: Annotated[int, typer.Option("--pp", help="Pipeline stages (layer split).")] = 1,
    engine: Annotated[Optional[str], typer.Option(help="Engine whose fitted profile the estimate uses.")] = None,
    sort: Annotated[str, typer.Option(help="Sort by: decode, ttft, memory.")] = "decode",
    csv: Annotated[Optional[str], typer.Option("--csv", help="Also write the table to FILE.csv.")] = None,
    markdown: Annotated[bool, Flag("--markdown", help="Print the table as Markdown.")] = False,
    plot: Annotated[Optional[str], typer.Option(help="Write a bar chart (estimate, range, ceiling) to "
                                                "FILE.png|svg|pdf.")] = None,
    html: Annotated[Optional[str], typer.Option("--html", help="Also write a self-contained HTML report to "
                                                "FILE.html (inline charts, readable offline).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Several devices, formats and/or models side by side, one table, fastest first."""
    from .hardware import select_hardware
    from .roofline import predict as run

    keys = {"decode": lambda p: -p.decode.estimate_tok_s, "ttft": lambda p: p.prefill.ttft_ms,
            "memory": lambda p: p.memory.total_gb}
    if sort not in keys:
        raise UserError(f"--sort must be one of {', '.join(keys)}, got {sort!r}")
    check_outputs(csv, plot, html)
    formats = _split(weights, "--weights") or [None]
    names, devices = _split(models, "MODELS"), _split(hardware, "--hardware")
    if not names:
        raise UserError("compare needs at least one model")
    if not devices:
        raise UserError("compare needs at least one device (--hardware)")
    chosen = select_hardware(devices, _split(category) or None, min_memory_gb)
    results = [run(m, h, weights=f, kv_cache=kv_cache, batch=batch, prompt=prompt, context=context, gen=gen, tp=tp,
                   pp=pp, engine=engine)
               for m in names for h in chosen for f in formats]
    results.sort(key=keys[sort])
    header = ("model", "device", "weights", "tok/s ceil", "tok/s est", "batch tok/s", "TTFT ms", "bound", "GB",
              "fits")
    rows = []
    for p in results:
        short = min((p.hardware.id, *p.hardware.aliases), key=len)
        rows.append((p.model.id, short, p.workload.weights, f"{p.decode.ceiling_tok_s:,.1f}",
                     f"{p.decode.estimate_tok_s:,.1f}", f"{p.decode.estimate_throughput_tok_s:,.1f}",
                     f"{p.prefill.ttft_ms:,.1f}", p.decode.bound, f"{p.memory.total_gb:,.1f}",
                     "yes" if p.memory.fits else f"no ({p.memory.min_devices or '>4096'})"))
    if csv:
        from .files import write_csv

        write_csv(csv, [{"model": p.model.id, "hardware": p.hardware.id, "weights": p.workload.weights,
                         "ceiling_tok_s": p.decode.ceiling_tok_s, "estimate_tok_s": p.decode.estimate_tok_s,
                         "throughput_tok_s": p.decode.estimate_throughput_tok_s, "ttft_ms": p.prefill.ttft_ms,
                         "tpot_ms": p.decode.tpot_ms, "bound": p.decode.bound, "memory_gb": p.memory.total_gb,
                         "fits": p.memory.fits, "min_devices": p.memory.min_devices} for p in results])
    if plot:
        from .plots import plot_compare

        plot_compare(results, plot)
    if html:
        from .plots import plot_compare
        from .report import svg_of, table, write_html

        write_html(html, f"compare: batch {batch}, prompt {prompt}, gen {gen}",
                   [("html", svg_of(plot_compare, results)), ("html", table(header, rows))])
    if as_json:
        _print_json([{k: v for k, v in p.to_dict().items() if k != "operators"} for p in results])
        return
    title = (f"batch {batch}, prompt {prompt}, gen {gen}" + (f", tp {tp}" if tp > 1 else "")
             + (f", pp {pp}" if pp > 1 else "") + (f", engine {engine}" if engine else ""))
    if markdown:
        out = [f"{title}", "", "| " + " | ".join(header) + " |",
               "|" + "|".join("---:" if c not in ("model", "device", "weights", "bound", "fits") else "---"
                              for c in header) + "|"]
        out += ["| " + " | ".join(r) + " |" for r in rows]
        sys.stdout.write("\n".join(out) + "\n")
        return
    from rich.table import Table

    t = Table(title=title, show_edge=False, pad_edge=False)
    for col in header:
        t.add_column(col, justify="left" if col in ("model", "device", "weights", "bound", "fits") else "right")
    for r in rows:
        t.add_row(*r)
    _console().print(t)


# ------------------------------------------------------------------------------------------------------ measure


def _check_out(path: str | None, option: str = "--out") -> None:
    from .files import check_output_path

    if path is not None:
        check_output_path(path, option, (".json",))


@app.command()
def measure(
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")] = "auto",
    quick: Annotated[bool, Flag("--quick", help="Fewer sizes and repeats: under a minute on 2 cores.")]
    = False,
    out: Annotated[Optional[str], typer.Option(help="Write the profile to PROFILE.json.")] = None,
    plot: Annotated[Optional[str], typer.Option(help="Write the measured roofline to FILE.png|svg|pdf.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Measure this machine: bandwidth by buffer size, matmul peaks, the empirical roofline, overheads."""
    from .measure.device import resolve_device
    from .measure.micro import measure as run

    _check_out(out)
    check_outputs(plot=plot)
    dev = resolve_device(device)
    from rich.progress import Progress

    with Progress(transient=True, console=_console() if not as_json else None) as progress:
        task = progress.add_task(f"measuring {dev}", total=None)

        def factory():
            return lambda label: progress.update(task, description=f"{dev}: {label}", advance=1)

        profile = run(dev, quick=quick, progress_factory=factory)
    if plot:  # the chart first: the profile (plain JSON) is the output that must not be left without it
        from .measure.plots import plot_profile

        plot_profile(profile, plot)
    if out:
        from .files import write_json

        write_json(out, profile, indent=1)
    for warning in profile.get("warnings", []):
        sys.stderr.write(f"llm-roofline: warning: {warning}\n")
    if as_json:
        _print_json(profile)
        return
    con = _console()
    con.print(f"[bold]{profile['name']}[/] ({profile['backend']}; {'quick' if quick else 'full'} run)")
    lo, hi = profile["bandwidth_spread_gbps"]
    con.print(f"memory read bandwidth (largest buffer): {profile['bandwidth_gbps']:,.1f} GB/s "
              f"(min-max {lo:,.1f}-{hi:,.1f}); copy {profile['copy_gbps']:,.1f} GB/s")
    for row in profile["bandwidth"]:
        con.print(f"  {row['bytes'] / 2**20:>8,.0f} MiB: read {row['read_gbps']:7,.1f} GB/s, copy "
                  f"{row['copy_gbps']:7,.1f} GB/s", highlight=False)
    for dtype, m in profile["matmul"].items():
        con.print(f"matmul {dtype}: {m['tflops']:,.3f} TFLOPS (min-max {m['min_tflops']:,.3f}-{m['max_tflops']:,.3f})")
    con.print(f"ridge point (fp32): {profile['ridge_point_flop_per_byte'] or 0:,.1f} FLOP/byte")
    for row in profile["roofline"]:
        if row.get("aspect", 1.0) != 1.0:  # tall and wide matrices are in the JSON; square ones tell the story
            continue
        con.print(f"  {row['dtype']} {row['matrix_bytes'] / 2**20:6.2f} MiB matrices x {row['vectors']:>4} vectors: "
                  f"{row['intensity_flop_per_byte']:7.2f} FLOP/B, {row['gflops']:9,.1f} GFLOP/s, "
                  f"{row['gbps']:6,.1f} GB/s", highlight=False)
    shapes = sorted({row.get("aspect", 1.0) for row in profile["roofline"]} - {1.0})
    if shapes:
        con.print(f"  (square matrices shown; out/in {', '.join(f'{a:g}' for a in shapes)} also measured, in the JSON)")
    con.print(f"overheads: {profile['dispatch_overhead_us']['median']:,.1f} µs per operator; decode step "
              f"{profile['step_overhead_us']:,.0f} µs + {profile['layer_overhead_us']:,.0f} µs per layer")
    if out:
        con.print(f"profile written to {out}; use it with `predict --hardware {out}`")


@app.command()
def bench(
    model: Annotated[str, typer.Argument(help="Catalog id (random weights) or a local checkpoint directory.")],
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")] = "auto",
    weights: Annotated[str, typer.Option(help="f32, bf16, f16 or int8 (CPU dynamic quantisation).")] = "f32",
    batch: Annotated[list[str], typer.Option(help="Batch sizes (repeat or comma-separate).")] = ["1"],  # noqa: B006
    prompt: Annotated[Optional[int], typer.Option(help="Prompt tokens per sequence (default 32; llama.cpp: 512, "
                                                       "its pp test).")] = None,
    gen: Annotated[Optional[int], typer.Option(help="Tokens decoded per sequence (default 32; llama.cpp: 128, its "
                                                    "tg test).")] = None,
    repeats: Annotated[int, typer.Option(help="Timed runs per configuration.")] = 3,
    hardware: Annotated[Optional[str], typer.Option("--hardware", "-H", help="Profile JSON from `measure` "
                                                                              "(default: a quick one, now).")]
    = None,
    plot: Annotated[Optional[str], typer.Option(help="Measured vs predicted across batches to FILE.png|svg.")]
    = None,
    engine: Annotated[Optional[str], typer.Option(help="llama.cpp: run MODEL.gguf through llama-cpp-python, "
                                                       "llama-bench style (pp and tg at each --depth); default: "
                                                       "transformers.")] = None,
    depth: Annotated[list[str], typer.Option(help="llama.cpp: KV depths the tests start from, e.g. 0,4096.")]
    = ["0"],  # noqa: B006
    threads: Annotated[Optional[int], typer.Option(help="llama.cpp: CPU threads (default: every core).")] = None,
    draft: Annotated[Optional[str], typer.Option(help="Speculative decoding: time transformers' assisted "
                                                 "generation with this draft (a catalog id, random weights) beside "
                                                 "plain generation, batch 1.")] = None,
    draft_tokens: Annotated[int, typer.Option("--draft-tokens", help="Tokens drafted per round (k).")] = 4,
    draft_seed: Annotated[int, typer.Option("--draft-seed", help="Seed of the draft's random weights: 0 with the "
                                            "target's own architecture makes the draft the target itself "
                                            "(acceptance 1).")] = 1,
    as_json: JsonOpt = False,
) -> None:
    """Run a real decode with transformers (or llama.cpp) and set it beside the prediction from the machine's
    profile."""
    from .measure.device import resolve_device

    if engine is not None:
        if engine != "llama.cpp":
            raise UserError(f"bench --engine runs llama.cpp (or, without it, transformers); got {engine!r}")
        _bench_llama(model, prompt or 512, gen or 128, depth, threads, repeats, hardware, plot, as_json)
        return
    prompt, gen = prompt or 32, gen or 32
    try:
        batches = tuple(int(b) for b in _split(batch, "--batch"))
    except ValueError:
        raise UserError(f"--batch takes whole numbers, got {', '.join(batch)}") from None
    check_outputs(plot=plot)
    dev = resolve_device(device)
    try:
        import transformers  # noqa: F401
    except ImportError:
        raise UserError("bench needs PyTorch and transformers: pip install 'llm-roofline[measure]'") from None
    from .measure.bench import bench as run, check_inputs

    # Every input is checked before the machine is measured (a quick profile takes most of a minute).
    check_inputs(model, dev, weights, batches, prompt, gen, repeats, hardware)
    if draft is not None:
        check_inputs(draft, dev, weights, (1,), prompt, gen, repeats, hardware)
        if batches != (1,) or plot:
            raise UserError("bench --draft runs batch 1 (transformers' assisted generation) and has no --plot")
        if not 1 <= draft_tokens <= 16:
            raise UserError(f"--draft-tokens must be 1..16, got {draft_tokens}")
    profile = hardware
    if profile is None:
        from .measure.micro import measure as quick_measure

        profile = quick_measure(dev, quick=True)
    if draft is not None:
        _bench_draft(model, draft, dev, weights, prompt, gen, draft_tokens, profile, repeats, draft_seed, as_json)
        return
    from .cli_common import SourceProgress

    with SourceProgress("decoding") as progress:
        result = run(model, dev, weights, batches, prompt, gen, hardware=profile, repeats=repeats, progress=progress)
    if plot:
        from .measure.plots import plot_bench

        plot_bench(result, plot)
    if as_json:
        _print_json(result)
        return
    from rich.table import Table

    con = _console()
    con.print(f"[bold]{result['model']}[/] ({result['weights']}, {result['weights_source']}) on {result['device']}; "
              f"prompt {prompt}, {gen} tokens; profile {result['hardware_name']} "
              f"({result['bandwidth_gbps']:,.1f} GB/s)")
    t = Table(show_edge=False, pad_edge=False)
    for col in ("batch", "ceiling tok/s", "estimate tok/s", "measured tok/s", "error %", "batch tok/s", "MBU",
                "TPOT ms", "TTFT ms", "est. TTFT ms", "read GB/s after"):
        t.add_column(col, justify="right")
    for r in result["rows"]:
        t.add_row(str(r["batch"]), f"{r['ceiling_tok_s']:,.1f}", f"{r['estimate_tok_s']:,.1f}",
                  f"{r['measured_tok_s']:,.1f}", f"{r['error_pct']:+.1f}", f"{r['measured_throughput_tok_s']:,.1f}",
                  f"{r['mbu']:.2f}", f"{r['tpot_ms']:,.2f}", f"{r['ttft_ms']:,.1f}", f"{r['estimate_ttft_ms']:,.1f}",
                  f"{r['read_gbps_after']:,.1f}")
    con.print(t)
    for warning in result["warnings"]:
        con.print(f"[yellow]{warning}[/]")


def _bench_llama(model, prompt, gen, depth, threads, repeats, hardware, plot, as_json) -> None:
    from .cli_common import SourceProgress, parse_values
    from .measure.llama_bench import bench_llama_cpp, check_gguf_path, check_llama_cpp

    depths = tuple(parse_values(depth, "--depth", minimum=0))
    check_outputs(plot=plot)
    if threads is not None and threads < 1:
        raise UserError(f"--threads must be >= 1, got {threads}")
    check_gguf_path(model)
    check_llama_cpp()
    from .architecture import load_model

    load_model(model)  # the file is read (and refused) before the machine is measured
    profile = hardware
    if profile is None:
        from .measure.micro import measure as quick_measure

        profile = quick_measure("cpu", quick=True)
    with SourceProgress("llama.cpp") as progress:
        r = bench_llama_cpp(model, profile, prompt, gen, depths, threads, repeats, progress)
    if plot:
        from .measure.plots import plot_llama_bench

        plot_llama_bench(r, plot)
    if as_json:
        _print_json(r)
        return
    from rich.table import Table

    con = _console()
    con.print(f"[bold]{r['model']}[/] ({r['weights']}, {r['weight_bytes'] / 1e9:,.2f} GB) with llama.cpp "
              f"(llama-cpp-python {r['llama_cpp_python']}), {r['threads']} threads, {r['repeats']} runs; profile "
              f"{r['hardware_name']} ({r['bandwidth_gbps']:,.1f} GB/s)")
    t = Table(show_edge=False, pad_edge=False)
    for col in ("test", "depth", "measured tok/s", "ceiling tok/s", "estimate tok/s", "error %", "MBU", "bound"):
        t.add_column(col, justify="left" if col in ("test", "bound") else "right")
    for row in r["rows"]:
        t.add_row(row["test"], str(row["depth"]), f"{row['measured_tok_s']:,.1f} ± {row['measured_sd_tok_s']:,.1f}",
                  f"{row['ceiling_tok_s']:,.1f}", f"{row['estimate_tok_s']:,.1f}", f"{row['error_pct']:+.1f}",
                  f"{row['mbu']:.2f}" if "mbu" in row else "", row["bound"])
    con.print(t)
    from .measure.llama_kernels import describe

    con.print(f"llama.cpp's kernels on reference files of other shapes (the estimate's rates): "
              f"{describe(r['kernels'])}", highlight=False)
    for note in r["notes"]:
        con.print(f"note: {note}", highlight=False)
    if plot:
        con.print(f"chart written to {plot}")


def _bench_draft(model, draft, dev, weights, prompt, gen, k, profile, repeats, seed, as_json) -> None:
    from .measure.spec_bench import bench_speculative

    r = bench_speculative(model, draft, dev, weights, prompt, gen, k, profile, repeats, seed)
    if as_json:
        _print_json(r)
        return
    con = _console()
    con.print(f"[bold]{r['model']}[/] drafted by [bold]{r['draft']}[/] ({r['weights_source']}), k {k}, prompt "
              f"{prompt}, {gen} tokens on {dev}: measured acceptance {r['acceptance']:.2f} "
              f"({r['tokens_per_round']:.2f} tokens per verify pass)")
    con.print(f"plain generate: measured {r['plain_measured_tok_s']:,.1f} tok/s (profile estimate "
              f"{r['plain_profile_estimate_tok_s']:,.1f})")
    con.print(f"assisted: measured {r['assisted_measured_tok_s']:,.1f} tok/s (x{r['measured_speedup']:.2f}); "
              f"predicted {r['assisted_predicted_tok_s']:,.1f} (x{r['predicted_speedup']:.2f} on the measured plain "
              f"rate, {r['error_pct']:+.1f}%); from the profile alone {r['assisted_profile_estimate_tok_s']:,.1f}")


# ------------------------------------------------------------------------------------------------------ validate


@app.command()
def validate(
    data: Annotated[list[str], typer.Option("--data", help="Measurement CSV(s) (default: the shipped dev.csv).")]
    = [],  # noqa: B006
    by: Annotated[Optional[str], typer.Option(help="Also summarise by engine, metric, hardware, weights or source.")]
    = None,
    loso: Annotated[bool, Flag("--loso", help="Estimate each row with profiles fitted without its source "
                                                      "(slow: refits per source).")] = False,
    profiles: Annotated[Optional[str], typer.Option(help="Engine-profile JSON from `calibrate`.")] = None,
    plot: Annotated[Optional[str], typer.Option(help="Write estimate-vs-measured to FILE.png|svg|pdf.")] = None,
    rows: Annotated[bool, Flag("--rows", help="List every row, not only the summary.")] = False,
    html: Annotated[Optional[str], typer.Option("--html", help="Also write a self-contained HTML report to "
                                                "FILE.html (inline charts, readable offline).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Predict public measurements row by row: error per metric, ceiling violations, rows that could not be predicted."""
    from .validate import plot_validation, validate as run

    check_outputs(plot=plot, html=html)
    from .cli_common import SourceProgress

    with SourceProgress("refitting without each source") as progress:
        report = run(data or None, by=by, loso=loso, profiles_path=profiles, progress=progress)
    if plot:
        plot_validation(report, plot)
    if html:
        from .report import svg_of, table, write_html

        def summary_rows(summary):
            return [[k, v.n, f"{v.median_abs_error_pct:.1f}", f"{v.p90_abs_error_pct:.1f}", f"{v.bias_pct:+.1f}",
                     v.ceiling_violations] for k, v in summary.items()]

        header = ["metric", "n", "median |err| %", "p90 |err| %", "bias %", "ceiling violations"]
        blocks = [("p", f"{len(report.rows)} rows predicted, {len(report.skipped)} skipped; {report.method}"),
                  ("html", table(header, summary_rows(report.summary)))]
        for group, summary in sorted(report.groups.items()):
            blocks += [("h2", f"{by} = {group}"), ("html", table(header, summary_rows(summary)))]
        blocks += [("h2", "Estimate against measured"), ("html", svg_of(plot_validation, report))]
        write_html(html, "validate: predictions against public measurements", blocks)
    if as_json:
        _print_json(report.to_dict())
        return
    from rich.table import Table

    con = _console()
    con.print(f"[bold]{len(report.rows)}[/] rows predicted, {len(report.skipped)} skipped; {report.method}")

    def summary_table(title: str, summary: dict) -> Table:
        t = Table(title=title, show_edge=False, pad_edge=False)
        for col in ("metric", "n", "median |err| %", "p90 |err| %", "bias %", "ceiling violations"):
            t.add_column(col, justify="left" if col == "metric" else "right")
        for metric, s in summary.items():
            t.add_row(metric, str(s.n), f"{s.median_abs_error_pct:.1f}", f"{s.p90_abs_error_pct:.1f}",
                      f"{s.bias_pct:+.1f}", str(s.ceiling_violations))
        return t

    con.print(summary_table("all rows", report.summary))
    for group, summary in sorted(report.groups.items()):
        con.print(summary_table(f"{by} = {group}", summary))
    if rows:
        t = Table(show_edge=False, pad_edge=False)
        for col in ("line", "engine", "hardware", "model", "weights", "metric", "measured", "ceiling", "estimate",
                    "range", "err %"):
            t.add_column(col, justify="right" if col in ("line", "measured", "ceiling", "estimate", "err %")
                         else "left")
        for r in report.rows:
            t.add_row(str(r.line), r.engine, r.hardware[:28], r.model, r.weights, r.metric, f"{r.measured:,.1f}",
                      f"{r.ceiling:,.1f}", f"{r.estimate:,.1f}", f"{r.estimate_low:,.1f}-{r.estimate_high:,.1f}",
                      f"{r.error_pct:+.1f}")
        con.print(t)
    for r in report.violations:
        con.print(f"[red]ceiling violation[/] line {r.line}: {r.engine} {r.hardware} {r.model} {r.weights} "
                  f"{r.metric} measured {r.measured:,.1f} vs ceiling {r.ceiling:,.1f}", highlight=False)
    for skip in report.skipped:
        con.print(f"skipped line {skip.line}: {skip.reason}", style="dim", highlight=False)
    if plot:
        con.print(f"plot written to {plot}")


@app.command()
def calibrate(
    data: Annotated[list[str], typer.Option("--data", help="Measurement CSV(s) to fit on.")],
    out: Annotated[str, typer.Option("--out", help="Where to write the engine-profile JSON.")],
) -> None:
    """Fit engine efficiency profiles to measurements and report their leave-one-source-out error."""
    from pathlib import Path

    from .calibrate import calibrate as run

    _check_out(out)
    from .cli_common import SourceProgress

    with SourceProgress("measuring the fit without each source") as progress:
        meta = run(data, Path(out), progress=progress)
    con = _console()
    con.print(f"{meta['rows_used']} rows from {len(meta['sources'])} sources fitted; profiles written to {out}")
    for metric, s in meta["leave_one_source_out"].items():
        con.print(f"  {metric}: leave-one-source-out median |error| {s['median_abs_error_pct']:.1f}% "
                  f"(p90 {s['p90_abs_error_pct']:.1f}%, bias {s['bias_pct']:+.1f}%, n {s['n']})", highlight=False)


# ------------------------------------------------------------------------------------------------------ catalogs


@hardware_app.command("list")
def hardware_list(as_json: JsonOpt = False) -> None:
    """Every catalog device with its bandwidth, memory and fp16 peak."""
    from .hardware import Hardware
    from .catalog import hardware_records

    devices = [Hardware.from_record(r) for r in hardware_records()]
    if as_json:
        _print_json([{"id": h.id, "name": h.name, "aliases": list(h.aliases), "category": h.category,
                      "bandwidth_gbps": h.bandwidth_gbps, "memory_gb": h.memory_gb, "peak_tflops": h.peak_tflops,
                      "confidence": h.confidence} for h in devices])
        return
    from rich.table import Table

    t = Table(show_edge=False, pad_edge=False)
    for col in ("id", "aliases", "GB/s", "GB", "fp16 TFLOPS", "ridge FLOP/B", "confidence"):
        t.add_column(col, justify="right" if col in ("GB/s", "GB", "fp16 TFLOPS", "ridge FLOP/B") else "left")
    for h in devices:
        ridge = h.ridge_point()
        t.add_row(h.id, ", ".join(h.aliases), f"{h.bandwidth_gbps:,.0f}", f"{h.memory_gb:,.0f}",
                  f"{h.peak_tflops.get('fp16') or 0:,.1f}", f"{ridge:,.0f}" if ridge else "-", h.confidence or "")
    _console().print(t)


@hardware_app.command("show")
def hardware_show(name: str, as_json: JsonOpt = False) -> None:
    """One device: every figure, its sources, notes and confidence."""
    from .hardware import load_hardware

    h = load_hardware(name)
    if as_json:
        _print_json(h.to_dict())
        return
    con = _console()
    if h.measured:
        _show_profile(h, con)
        return
    con.print(f"[bold]{h.name}[/] ({h.id}; aliases: {', '.join(h.aliases) or '-'})")
    con.print(f"memory {h.memory_gb:g} GB, bandwidth {h.bandwidth_gbps:,.1f} GB/s, device link "
              f"{h.link_name or 'none published'} ({h.link_gbps:,.1f} GB/s per direction)")
    peaks = ", ".join(f"{k} {v:g}" for k, v in h.peak_tflops.items() if v)
    con.print(f"dense peaks (TFLOPS/TOPS): {peaks or 'none published'}")
    if h.compute_capability:
        con.print(f"CUDA compute capability {h.compute_capability:g}")
    ridge = h.ridge_point()
    con.print(f"ridge point (fp16): {ridge:,.0f} FLOP/byte" if ridge else "ridge point: unknown")
    d = h.defaults
    con.print(f"estimate defaults ({h.device_class}): {d.bandwidth_efficiency:.0%} of bandwidth, "
              f"{d.compute_efficiency:.0%} of FLOPS, {d.step_overhead_us:g} µs/step, {d.runtime_overhead_gb:g} GB "
              f"runtime memory ({d.source})")
    con.print(f"confidence: {h.confidence}")
    con.print(f"notes: {h.notes}", highlight=False)
    for s in h.sources:
        con.print(f"source: {s}", highlight=False)


def _show_profile(h, con) -> None:
    """A measured profile beside the catalog device it is closest to (bandwidth and fp32 rate, log distance)."""
    import math

    from rich.table import Table

    from .catalog import hardware_records
    from .hardware import Hardware

    def distance(c: Hardware) -> float:
        d = abs(math.log(c.bandwidth_gbps / h.bandwidth_gbps))
        for dtype in ("fp32", "fp16"):
            if c.peak_tflops.get(dtype) and h.peak_tflops.get(dtype):
                d += abs(math.log(c.peak_tflops[dtype] / h.peak_tflops[dtype]))
        return d

    catalog_devices = [Hardware.from_record(r) for r in hardware_records()]
    same_class = [c for c in catalog_devices if c.device_class == h.device_class] or catalog_devices
    near = min(same_class, key=distance)
    con.print(f"[bold]{h.name}[/] ({h.sources[0] if h.sources else 'measured'})")
    t = Table(title=f"measured, beside the closest catalog device: {near.id}", show_edge=False, pad_edge=False)
    for col in ("figure", "measured", near.id, "ratio"):
        t.add_column(col, justify="left" if col == "figure" else "right")
    rows = [("read bandwidth GB/s", h.bandwidth_gbps, near.bandwidth_gbps)]
    rows += [(f"{d} TFLOPS", h.peak_tflops.get(d), near.peak_tflops.get(d)) for d in ("fp32", "bf16", "fp16", "int8")
             if h.peak_tflops.get(d)]
    rows.append(("memory GB", h.memory_gb, near.memory_gb))
    for label, mine, theirs in rows:
        t.add_row(label, f"{mine:,.3g}", f"{theirs:,.3g}" if theirs else "-",
                  f"{mine / theirs:,.2f}" if theirs else "-")
    con.print(t)
    step, layer = h.overheads_at(1)
    con.print(f"overheads: {step:,.0f} µs per decode step + {layer:,.0f} µs per layer (batch 1); ridge point "
              f"{h.ridge_point('fp32') or 0:,.1f} FLOP/B (fp32)")


@models_app.command("list")
def models_list(as_json: JsonOpt = False) -> None:
    """Every catalog model with its size and layout."""
    from .architecture import load_model, param_counts
    from .catalog import model_ids

    rows = []
    for mid in model_ids():
        spec = load_model(mid)
        counts = param_counts(spec)
        rows.append({"id": mid, "hf_repo": spec.aliases[0] if spec.aliases else None, "model_type": spec.model_type,
                     "params_total": counts.total, "params_active": counts.active, "layers": spec.n_layers,
                     "checkpoint_dtype": spec.checkpoint_dtype})
    if as_json:
        _print_json(rows)
        return
    from rich.table import Table

    t = Table(show_edge=False, pad_edge=False)
    for col in ("id", "Hugging Face repo", "type", "params (B)", "active (B)", "layers", "dtype"):
        t.add_column(col, justify="right" if col in ("params (B)", "active (B)", "layers") else "left")
    for r in rows:
        t.add_row(r["id"], r["hf_repo"] or "", r["model_type"], f"{r['params_total'] / 1e9:,.2f}",
                  f"{r['params_active'] / 1e9:,.2f}", str(r["layers"]), r["checkpoint_dtype"])
    _console().print(t)


@models_app.command("show")
def models_show(name: str, as_json: JsonOpt = False) -> None:
    """One model: its normalized architecture, parameter counts and KV-cache size per token."""
    from .architecture import load_model, param_counts
    from .memory import kv_cache_bytes

    spec = load_model(name)
    counts = param_counts(spec)
    kv_per_token = kv_cache_bytes(spec, 16, 1, 1) - kv_cache_bytes(spec, 16, 1, 0)
    if as_json:
        _print_json({**spec.to_dict(), "params": counts.to_dict(), "kv_bytes_per_token_f16": kv_per_token})
        return
    con = _console()
    con.print(f"[bold]{spec.id}[/] ({spec.model_type}; {spec.source})")
    con.print(f"params {counts.total / 1e9:,.3f} B total, {counts.active / 1e9:,.3f} B active per token; embedding "
              f"{counts.embedding / 1e9:,.3f} B, lm_head {'tied' if spec.tie_embeddings else f'{counts.lm_head / 1e9:,.3f} B'}")
    con.print(f"hidden {spec.hidden_size}, layers {spec.n_layers}, vocab {spec.vocab_size:,}, max context "
              f"{spec.max_position}, checkpoint dtype {spec.checkpoint_dtype}")
    runs = spec.to_dict()["layer_runs"]
    for run in runs:
        layer = run["layer"]
        window = f", window {layer['window']}" if layer["window"] else ""
        con.print(f"  {run['count']} x {layer['attention']} attention: {layer['n_heads']} heads, "
                  f"{layer['n_kv_heads']} KV heads x {layer['head_dim']}{window}; {layer['mlp']} MLP"
                  + (f" {layer['intermediate']}" if layer["intermediate"] else ""), highlight=False)
    if spec.moe:
        moe = spec.moe
        con.print(f"experts: {moe.n_experts} routed (top {moe.top_k}, width {moe.expert_intermediate}), "
                  f"{moe.n_shared} shared")
    if spec.mla:
        con.print(f"MLA: kv_lora_rank {spec.mla.kv_lora_rank} + rope {spec.mla.qk_rope_head_dim} cached per token")
    con.print(f"KV cache (16-bit): {kv_per_token / 1e3:,.1f} kB per token per sequence")
    for note in spec.notes:
        con.print(f"note: {note}", style="yellow")


# ------------------------------------------------------------------------------------------------------ entry


def main(argv: list[str] | None = None) -> int:
    """Console entry point: usage errors and UserError become one line on stderr and exit code 2."""
    try:  # recent typer vendors click as typer._click; older releases use click itself
        from typer._click import exceptions as click
    except ImportError:  # pragma: no cover
        from click import exceptions as click

    try:
        app(args=argv, standalone_mode=False, prog_name="llm-roofline")
    except UserError as exc:
        sys.stderr.write(f"llm-roofline: error: {exc}\n")
        return 2
    except click.NoArgsIsHelpError:
        return 0
    except click.UsageError as exc:
        sys.stderr.write(f"llm-roofline: error: {exc.format_message()} (see --help)\n")
        return 2
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        sys.stderr.write("llm-roofline: aborted\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
