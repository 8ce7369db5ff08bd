"""`--html FILE`: one self-contained HTML report (inline SVG charts, inline CSS, no script, no network)."""

from __future__ import annotations

import html
import tempfile
from pathlib import Path

from .files import check_output_path, write_atomically

CSS = ("body{font:14px/1.4 system-ui,sans-serif;max-width:1100px;margin:1em auto;padding:0 1em;color:#222}"
       "table{border-collapse:collapse;margin:.5em 0}td,th{border-bottom:1px solid #ddd;padding:.2em .6em;"
       "text-align:right}td:first-child,th:first-child{text-align:left}pre{white-space:pre-wrap;"
       "background:#f6f6f6;padding:.6em;font-size:12px}svg{max-width:100%;height:auto}")


def check_html_path(path: str | Path) -> Path:
    return check_output_path(path, "--html", (".html", ".htm"))


def svg_of(plot, *args) -> str:
    """A chart from one of the package's plot functions (which write a file), as inline SVG."""
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "chart.svg"
        plot(*args, target)
        text = target.read_text()
    return text[text.index("<svg"):]


def table(header, rows) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def write_html(path: str | Path, title: str, blocks: list[tuple[str, str]]) -> Path:
    """blocks: (kind, content): "h2" / "p" / "pre" are escaped text, "html" is markup built here (tables,
    inline SVG from the package's own charts)."""
    parts = []
    for kind, content in blocks:
        if kind == "html":
            parts.append(content)
        else:
            parts.append(f"<{kind}>{html.escape(content)}</{kind}>")
    doc = (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
           f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>{''.join(parts)}"
           "<p>Written by llm-roofline; every figure's arithmetic is in the report's text.</p></body></html>")

    def write(tmp: str) -> None:
        Path(tmp).write_text(doc, encoding="utf-8")

    return write_atomically(path, write)
