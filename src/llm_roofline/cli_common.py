"""What every command shares: the console, strict JSON, lists and ranges of values on the command line."""

from __future__ import annotations

import re
import sys
from typing import Annotated, Optional

import typer

from .errors import UserError

def Flag(*decls, **kw):
    """A boolean option: shown as a bare flag in --help (no <bool> to fill in)."""
    return typer.Option(*decls, metavar="", **kw)


DEFAULT_HARDWARE = "h100"
KvCacheOpt = Annotated[Optional[str], typer.Option("--kv-cache", help="KV-cache format (default f16/bf16).")]
CategoryOpt = Annotated[list[str], typer.Option(help="Only devices of these categories (consumer_gpu, datacenter_gpu, "
                                                "apple_soc, ... or a class: datacenter, consumer, apple, cpu, soc).")]
MinMemoryOpt = Annotated[Optional[float], typer.Option("--min-memory-gb", help="Only devices with at least this much "
                                                       "memory (GB).")]


def check_outputs(csv: str | None = None, plot: str | None = None, html: str | None = None) -> None:
    """Refuse a bad --csv, --plot or --html destination before any work starts."""
    if csv:
        from .files import check_output_path

        check_output_path(csv, "--csv", (".csv",))
    if plot:
        from .plots import check_plot_path

        check_plot_path(plot)
    if html:
        from .report import check_html_path

        check_html_path(html)
JsonOpt = Annotated[bool, Flag("--json", help="Machine-readable output.")]


def _console():
    from rich.console import Console

    # Piped output has no terminal width; do not squeeze tables into 80 columns and truncate names.
    return Console() if sys.stdout.isatty() else Console(width=160)


def _print_json(data) -> None:
    from .files import dumps_strict

    sys.stdout.write(dumps_strict(data, indent=2) + "\n")


def _split(values: list[str], option: str | None = None) -> list[str]:
    """Comma-separated or repeated values; with `option`, a value that names nothing (',,,' or '') is refused."""
    out = [v.strip() for value in values for v in value.split(",") if v.strip()]
    if option and values and not out:
        raise UserError(f"{option} names nothing ({', '.join(repr(v) for v in values)}); give at least one value")
    return out


_TOKENS = re.compile(r"^(\d+(?:\.\d+)?)([kKmM]?)$")


def parse_count(text: str, option: str) -> int:
    """A whole number, with k = 1024 and M = 1024^2 as llama.cpp and vLLM write context lengths (8k = 8192)."""
    m = _TOKENS.match(text.strip())
    if not m:
        raise UserError(f"{option}: {text!r} is not a number (write 512, 8k or 1M)")
    value = float(m.group(1)) * {"": 1, "k": 1024, "m": 1024 ** 2}[m.group(2).lower()]
    if value != int(value):
        raise UserError(f"{option}: {text!r} is not a whole number of tokens")
    return int(value)


def parse_values(values: list[str], option: str, minimum: int = 1) -> list[int]:
    """Comma-separated values and ranges: `1,8,64`, `8k,32k`, and `A-B` for A, the powers of two between, and B
    (`1-512` is 1, 2, 4, ..., 512; `3-100` is 3, 4, 8, ..., 64, 100)."""
    out: list[int] = []
    for item in _split(values, option):
        if "-" in item.strip("-"):
            lo_text, hi_text = item.split("-", 1)
            lo, hi = parse_count(lo_text, option), parse_count(hi_text, option)
            if lo > hi:
                raise UserError(f"{option}: range {item!r} runs backwards; write LOW-HIGH")
            span, p = [lo], 1
            while p < hi:
                if p > lo:
                    span.append(p)
                p *= 2
            out += span + ([hi] if hi != lo else [])
        else:
            out.append(parse_count(item, option))
    for v in out:
        if v < minimum:
            raise UserError(f"{option}: {v} is below {minimum}")
    return sorted(set(out))


class SourceProgress:
    """A transient rich progress bar on stderr, on a terminal only, for work done in steps (refits per held-out
    source in validate --loso and calibrate, batches in bench): progress(done, total, label)."""

    def __init__(self, what: str):
        self.active = sys.stderr.isatty()  # a pipe or a log gets no bar (and not a stray newline)
        self.task = None
        if not self.active:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            TextColumn("{task.description}"), console=Console(stderr=True), transient=True)

    def __enter__(self):
        if self.active:
            self.bar.start()
        return self

    def __exit__(self, *exc):
        if self.active:
            self.bar.stop()

    def __call__(self, done: int, total: int, source: str) -> None:
        if not self.active:
            return
        if self.task is None:
            self.task = self.bar.add_task("", total=total)
        self.bar.update(self.task, completed=done, total=total, description=source[-50:])
