"""serve-bench: measure any running OpenAI-compatible server, with vLLM's benchmark definitions.

Requests stream (server-sent events) from /v1/completions or /v1/chat/completions with a fixed prompt length and
max_tokens (EOS suppressed where the server honours ignore_eos / min_tokens), at a fixed concurrency (a closed
loop of N clients) or at a Poisson rate (optionally bursty: gamma inter-arrival times, as vLLM's bench). Per
request: TTFT (send to first content), ITL (gaps between content chunks), E2EL (send to last byte), TPOT
((E2EL - TTFT) / (output tokens - 1)); output tokens from the server's `usage` where it reports it, else the
content chunks. Summaries: mean, median, p90, p99; request and output throughput; goodput (requests per second
meeting every SLO). The only network access in the tool: the URL the user gives.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from .errors import UserError

PROMPT_WORD = "hello"  # one token in the common BPE vocabularies; the server's usage says what it really counted


@dataclass(frozen=True)
class RequestResult:
    ok: bool
    ttft_s: float = math.nan
    e2el_s: float = math.nan
    itl_s: tuple[float, ...] = ()
    prompt_tokens: int | None = None
    output_tokens: int = 0
    error: str = ""

    @property
    def tpot_s(self) -> float:
        return (self.e2el_s - self.ttft_s) / (self.output_tokens - 1) if self.output_tokens > 1 else math.nan


@dataclass(frozen=True)
class Summary:
    """One load level: every latency in ms as {mean, median, p90, p99}."""

    load: str  # "concurrency 4" or "rate 2 req/s"
    completed: int
    failed: int
    duration_s: float
    request_throughput_rps: float
    output_throughput_tok_s: float
    prompt_tokens_mean: float | None
    output_tokens_mean: float
    ttft_ms: dict
    tpot_ms: dict
    itl_ms: dict
    e2el_ms: dict
    goodput_rps: float | None = None
    errors: tuple[str, ...] = ()
    prediction: dict | None = None  # the prediction for the served model beside it, where asked

    def to_dict(self) -> dict:
        return asdict(self)


def _stats(values) -> dict:
    v = np.asarray([x for x in values if math.isfinite(x)], dtype=float) * 1e3
    if not v.size:
        return {"mean": None, "median": None, "p90": None, "p99": None}
    return {"mean": float(v.mean()), "median": float(np.median(v)), "p90": float(np.percentile(v, 90)),
            "p99": float(np.percentile(v, 99))}


def parse_slo(text: str | None) -> dict[str, float]:
    """ttft_ms=500,tpot_ms=50 -> {"ttft_ms": 500.0, "tpot_ms": 50.0}."""
    out: dict[str, float] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        key = key.strip()
        try:
            number = float(value)
        except ValueError:
            sep = ""
        if not sep or key not in ("ttft_ms", "tpot_ms", "e2el_ms") or not number > 0:
            raise UserError(f"--slo takes ttft_ms=, tpot_ms= and e2el_ms= with positive numbers, got {item!r}")
        out[key] = number
    return out


def _payload(chat: bool, model: str, prompt_tokens: int, gen: int) -> dict:
    prompt = " ".join([PROMPT_WORD] * prompt_tokens)
    body = {"model": model, "max_tokens": gen, "stream": True, "temperature": 0.0, "ignore_eos": True,
            "min_tokens": gen, "stream_options": {"include_usage": True}}
    if chat:
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    return body


def _content(event: dict, chat: bool) -> str:
    for choice in event.get("choices") or []:
        text = (choice.get("delta") or {}).get("content") if chat else choice.get("text")
        if text:
            return text
    return ""


async def _one(client, url: str, body: dict, chat: bool, headers: dict) -> RequestResult:
    start = time.perf_counter()
    first = last = None
    itl: list[float] = []
    chunks, usage = 0, None
    try:
        async with client.stream("POST", url, json=body, headers=headers) as response:
            if response.status_code != 200:
                text = (await response.aread()).decode("utf-8", "replace")[:200]
                return RequestResult(False, error=f"HTTP {response.status_code}: {text}")
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                try:
                    event = json.loads(data)
                except ValueError:
                    continue
                usage = event.get("usage") or usage
                if _content(event, chat):
                    now = time.perf_counter()
                    if first is None:
                        first = now
                    else:
                        itl.append(now - last)
                    last = now
                    chunks += 1
    except Exception as exc:  # noqa: BLE001 - any transport failure is a failed request, reported
        return RequestResult(False, error=f"{type(exc).__name__}: {exc}"[:200])
    end = time.perf_counter()
    if first is None:
        return RequestResult(False, error="no content streamed")
    out = int(usage["completion_tokens"]) if usage and usage.get("completion_tokens") else chunks
    prompt = int(usage["prompt_tokens"]) if usage and usage.get("prompt_tokens") else None
    return RequestResult(True, first - start, end - start, tuple(itl), prompt, out)


async def _run_level(url: str, body: dict, chat: bool, headers: dict, n: int, concurrency: int | None,
                     rate: float | None, burstiness: float, seed: int, timeout_s: float) -> tuple[list, float]:
    import httpx

    limits = httpx.Limits(max_connections=max(concurrency or 0, 64), max_keepalive_connections=64)
    async with httpx.AsyncClient(timeout=timeout_s, limits=limits) as client:
        start = time.perf_counter()
        if concurrency is not None:
            queue = list(range(n))
            results: list[RequestResult] = []

            async def worker():
                while queue:
                    queue.pop()
                    results.append(await _one(client, url, body, chat, headers))

            await asyncio.gather(*(worker() for _ in range(min(concurrency, n))))
        else:
            rng = np.random.default_rng(seed)
            gaps = rng.gamma(burstiness, 1 / (rate * burstiness), n)
            tasks = []
            for gap in gaps:
                tasks.append(asyncio.create_task(_one(client, url, body, chat, headers)))
                await asyncio.sleep(float(gap))
            results = list(await asyncio.gather(*tasks))
        return results, time.perf_counter() - start


def summarise(load: str, results: list[RequestResult], duration_s: float, slo: dict[str, float]) -> Summary:
    ok = [r for r in results if r.ok]
    good = None
    if slo:
        def meets(r: RequestResult) -> bool:
            values = {"ttft_ms": r.ttft_s * 1e3, "tpot_ms": r.tpot_s * 1e3, "e2el_ms": r.e2el_s * 1e3}
            return all(values[k] <= v or (k == "tpot_ms" and math.isnan(values[k])) for k, v in slo.items())
        good = sum(meets(r) for r in ok) / duration_s
    prompts = [r.prompt_tokens for r in ok if r.prompt_tokens is not None]
    return Summary(
        load, len(ok), len(results) - len(ok), duration_s, len(ok) / duration_s,
        sum(r.output_tokens for r in ok) / duration_s, float(np.mean(prompts)) if prompts else None,
        float(np.mean([r.output_tokens for r in ok])) if ok else 0.0,
        _stats(r.ttft_s for r in ok), _stats(r.tpot_s for r in ok),
        _stats(x for r in ok for x in r.itl_s), _stats(r.e2el_s for r in ok), good,
        tuple(sorted({r.error for r in results if not r.ok}))[:5])


@dataclass(frozen=True)
class BenchConfig:
    url: str
    model: str
    chat: bool = False
    prompt_tokens: int = 512
    gen: int = 128
    num_prompts: int = 50
    warmup: int = 2
    concurrency: tuple[int, ...] = (1,)
    rate: float | None = None
    burstiness: float = 1.0
    slo: dict = field(default_factory=dict)
    api_key: str | None = None  # never printed or saved
    timeout_s: float = 600.0
    seed: int = 0


def endpoint(url: str, chat: bool) -> str:
    if not url.startswith(("http://", "https://")):
        raise UserError(f"serve-bench needs an http:// or https:// URL, got {url!r}")
    base = url.rstrip("/")
    for suffix in ("/v1/chat/completions", "/v1/completions", "/v1"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    return base + ("/v1/chat/completions" if chat else "/v1/completions")


def served_model(url: str, api_key: str | None, timeout_s: float = 10.0) -> str:
    """The first model /v1/models lists (for servers that serve one)."""
    import httpx

    base = endpoint(url, False).removesuffix("/v1/completions")
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        r = httpx.get(base + "/v1/models", headers=headers, timeout=timeout_s)
        r.raise_for_status()
        return r.json()["data"][0]["id"]
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"cannot list the served models at {base}/v1/models ({type(exc).__name__}); give --model "
                        "with the name the server serves") from None


def run(cfg: BenchConfig) -> list[Summary]:
    """Warm-up requests, then every load level in turn."""
    url = endpoint(cfg.url, cfg.chat)
    headers = {"Authorization": f"Bearer {cfg.api_key}"} if cfg.api_key else {}
    body = _payload(cfg.chat, cfg.model, cfg.prompt_tokens, cfg.gen)
    levels = [(f"concurrency {c}", c, None) for c in cfg.concurrency] if cfg.rate is None else \
        [(f"rate {cfg.rate:g} req/s" + (f", burstiness {cfg.burstiness:g}" if cfg.burstiness != 1 else ""), None,
          cfg.rate)]

    async def main() -> list[Summary]:
        if cfg.warmup:
            results, _ = await _run_level(url, body, cfg.chat, headers, cfg.warmup, 1, None, 1.0, cfg.seed,
                                          cfg.timeout_s)
            if not any(r.ok for r in results):
                raise UserError(f"the server at {url} answered no warm-up request: {results[0].error}")
        out = []
        for name, concurrency, rate in levels:
            results, duration = await _run_level(url, body, cfg.chat, headers, cfg.num_prompts, concurrency, rate,
                                                  cfg.burstiness, cfg.seed, cfg.timeout_s)
            out.append(summarise(name, results, duration, cfg.slo))
        return out

    return asyncio.run(main())
