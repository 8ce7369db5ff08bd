"""serve-bench: measure any running OpenAI-compatible server, with vLLM's benchmark definitions.

Requests stream (server-sent events) from /v1/completions or /v1/chat/completions with a fixed prompt length and
max_tokens (EOS suppressed where the server honours ignore_eos / min_tokens), at a fixed concurrency (a closed
loop of N clients) or at a Poisson rate (optionally bursty: gamma inter-arrival times, as vLLM's bench). Per
request: TTFT (send to first content), ITL (gaps between content chunks), E2EL (send to last byte), TPOT
((E2EL - TTFT) / (output tokens - 1)); output tokens from the server's `usage` where it reports it, else the
content chunks. Summaries: mean, median, p90, p99; request and output throughput; goodput (requests per second
meeting every SLO). A failed request (refused, reset, HTTP error, malformed or unfinished stream, stalled, past its
deadline) is counted with its reason; a level in which none succeeds stops the run. The only network access in
the tool: the URL the user gives.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import Counter
from dataclasses import asdict, dataclass, field

import numpy as np

from .errors import UserError, closest

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
    errors: tuple[str, ...] = ()  # 'N x reason', the five most common
    prediction: dict | None = None  # the prediction for the served model beside it, where asked
    short: int = 0  # completed requests that streamed fewer tokens than asked (EOS not suppressed, or cut short)

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


class _Failed(Exception):
    """A request that cannot be counted: the reason, in one line."""


def _message(text: str) -> str:
    """A server's error body in one short line (OpenAI-style {"error": {"message": ...}} unwrapped)."""
    try:
        err = json.loads(text).get("error")
        text = err.get("message", text) if isinstance(err, dict) else str(err or text)
    except (ValueError, AttributeError):
        pass
    return " ".join(str(text).split())[:160]


def _http_error(status: int, text: str) -> str:
    return f"HTTP {status}: {_message(text)}"


def transport_error(exc: BaseException, stall_s: float) -> str:
    """One line for a failure below HTTP: refused, reset, stalled or timed out."""
    import httpx

    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect ({exc or 'refused'}): is the server running at that address?"
    if isinstance(exc, httpx.ConnectTimeout):
        return "cannot connect (timed out)"
    if isinstance(exc, httpx.ReadTimeout):
        return f"the stream stopped: no data for {stall_s:g} s (--stall-timeout)"
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError)):
        return "connection closed mid-stream (reset by the server)"
    return f"{type(exc).__name__}: {exc}"[:200]


async def _stream(client, url: str, body: dict, chat: bool, headers: dict) -> RequestResult:
    """One streamed request, timed from sending to each content chunk; a stream must end with [DONE]."""
    start = time.perf_counter()
    first = last = None
    itl: list[float] = []
    chunks, usage, done = 0, None, False
    async with client.stream("POST", url, json=body, headers=headers) as response:
        if response.status_code != 200:
            raise _Failed(_http_error(response.status_code, (await response.aread()).decode("utf-8", "replace")))
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue  # comments, event names, keep-alives
            data = line[5:].strip()
            if data == "[DONE]":
                done = True
                break
            try:
                event = json.loads(data)
            except ValueError:
                raise _Failed(f"malformed SSE event (not JSON): {data[:60]!r}") from None
            if not isinstance(event, dict):
                raise _Failed(f"malformed SSE event (not an object): {data[:60]!r}")
            if event.get("error"):
                raise _Failed(f"the server reported an error mid-stream: {_message(data)}")
            usage = event.get("usage") or usage
            if _content(event, chat):
                now = time.perf_counter()
                if first is None:
                    first = now
                else:
                    itl.append(now - last)
                last = now
                chunks += 1
    end = time.perf_counter()
    if not done:
        raise _Failed(f"the stream ended before [DONE] (after {chunks} content chunks)")
    if first is None:
        raise _Failed("no content streamed")
    out = int(usage["completion_tokens"]) if isinstance(usage, dict) and usage.get("completion_tokens") else chunks
    prompt = int(usage["prompt_tokens"]) if isinstance(usage, dict) and usage.get("prompt_tokens") else None
    return RequestResult(True, first - start, end - start, tuple(itl), prompt, out)


async def _one(client, url: str, body: dict, chat: bool, headers: dict, cfg: "BenchConfig") -> RequestResult:
    """A failed request is a result with its reason, never an exception: the run goes on and counts it."""
    try:
        return await asyncio.wait_for(_stream(client, url, body, chat, headers), cfg.timeout_s)
    except _Failed as exc:
        return RequestResult(False, error=str(exc))
    except asyncio.TimeoutError:
        return RequestResult(False, error=f"no complete answer within {cfg.timeout_s:g} s (--timeout)")
    except Exception as exc:  # noqa: BLE001 - any transport failure is a failed request, reported
        return RequestResult(False, error=transport_error(exc, cfg.stall_s))


async def _run_level(url: str, body: dict, chat: bool, headers: dict, n: int, concurrency: int | None,
                     rate: float | None, cfg: "BenchConfig", progress=None) -> tuple[list, float]:
    import httpx

    limits = httpx.Limits(max_connections=max(concurrency or 0, 64), max_keepalive_connections=64)
    timeout = httpx.Timeout(cfg.stall_s, connect=min(cfg.stall_s, 10.0))
    results: list[RequestResult] = []

    def finished(r: RequestResult) -> RequestResult:
        results.append(r)
        if progress is not None:
            progress(len(results), n)
        return r

    async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
        start = time.perf_counter()
        if concurrency is not None:
            queue = list(range(n))

            async def worker():
                while queue:
                    queue.pop()
                    finished(await _one(client, url, body, chat, headers, cfg))

            await asyncio.gather(*(worker() for _ in range(min(concurrency, n))))
        else:
            rng = np.random.default_rng(cfg.seed)
            gaps = rng.gamma(cfg.burstiness, 1 / (rate * cfg.burstiness), n)
            tasks = []

            async def timed():
                finished(await _one(client, url, body, chat, headers, cfg))

            for gap in gaps:
                tasks.append(asyncio.create_task(timed()))
                await asyncio.sleep(float(gap))
            await asyncio.gather(*tasks)
        return results, time.perf_counter() - start


def summarise(load: str, results: list[RequestResult], duration_s: float, slo: dict[str, float],
              gen: int | None = None) -> Summary:
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
        tuple(f"{n} x {reason}" for reason, n in Counter(r.error for r in results if not r.ok).most_common(5)),
        short=sum(r.output_tokens < gen for r in ok) if gen else 0)


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
    timeout_s: float = 600.0  # a whole request, first byte to [DONE]
    stall_s: float = 60.0  # no byte for this long: the stream has stopped
    seed: int = 0

    def levels(self) -> list[tuple[str, int | None, float | None]]:
        """(label, concurrency, rate) of each load level, in the order they run."""
        if self.rate is None:
            return [(f"concurrency {c}", c, None) for c in self.concurrency]
        bursty = f", burstiness {self.burstiness:g}" if self.burstiness != 1 else ""
        return [(f"rate {self.rate:g} req/s{bursty}", None, self.rate)]


def endpoint(url: str, chat: bool) -> str:
    if not url.startswith(("http://", "https://")):
        raise UserError(f"serve-bench needs an http:// or https:// URL, got {url!r}")
    base = url.rstrip("/")
    for suffix in ("/v1/chat/completions", "/v1/completions", "/v1"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    return base + ("/v1/chat/completions" if chat else "/v1/completions")


def served_models(url: str, api_key: str | None, timeout_s: float = 10.0) -> list[str] | None:
    """The ids /v1/models lists; None where the server has no such list (it is optional). A server that does not
    answer at all is refused here, before any load is sent."""
    import httpx

    base = endpoint(url, False).removesuffix("/v1/completions")
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        r = httpx.get(base + "/v1/models", headers=headers, timeout=timeout_s)
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"nothing could be measured at {base}: {transport_error(exc, timeout_s)}") from None
    if r.status_code in (401, 403):
        raise UserError(f"{base}/v1/models: {_http_error(r.status_code, r.text)} (set the key's variable, "
                        "--api-key-env)")
    try:
        r.raise_for_status()
        return [str(m["id"]) for m in r.json()["data"]]
    except Exception:  # noqa: BLE001 - no usable list: the model name is checked by the warm-up instead
        return None


def check_model(url: str, model: str | None, api_key: str | None) -> str:
    """The model name to send: the one given, if the server lists it, or the first the server lists."""
    listed = served_models(url, api_key)
    if model is None:
        if not listed:
            raise UserError(f"{url} lists no served models (/v1/models); give --model with the name it serves")
        return listed[0]
    if listed is not None and model not in listed:
        raise UserError(f"the server does not serve {model!r}{closest(model, listed)}; it lists: "
                        f"{', '.join(listed[:10])}")
    return model


def run(cfg: BenchConfig, on_level=None, progress=None) -> list[Summary]:
    """Warm-up requests, then every load level in turn. on_level(summaries so far) is called after each level
    (to write results as they come); progress(label, done, total) after each request. A level in which every
    request failed stops the run with a UserError naming the reason (the levels before it were passed to
    on_level)."""
    url = endpoint(cfg.url, cfg.chat)
    headers = {"Authorization": f"Bearer {cfg.api_key}"} if cfg.api_key else {}
    body = _payload(cfg.chat, cfg.model, cfg.prompt_tokens, cfg.gen)

    def tick(label):
        return None if progress is None else (lambda done, total: progress(label, done, total))

    async def main() -> list[Summary]:
        if cfg.warmup:
            results, _ = await _run_level(url, body, cfg.chat, headers, cfg.warmup, 1, None, cfg, tick("warm-up"))
            if not any(r.ok for r in results):
                raise UserError(f"nothing could be measured: the server at {url} answered no warm-up request "
                                f"({results[0].error})")
        out: list[Summary] = []
        for name, concurrency, rate in cfg.levels():
            results, duration = await _run_level(url, body, cfg.chat, headers, cfg.num_prompts, concurrency, rate,
                                                  cfg, tick(name))
            summary = summarise(name, results, duration, cfg.slo, cfg.gen)
            if not summary.completed:
                kept = f"; the {len(out)} level(s) before it were measured and kept" if out else ""
                raise UserError(f"every request at {name} failed ({'; '.join(summary.errors)}); stopped{kept}")
            out.append(summary)
            if on_level is not None:
                on_level(list(out))
        return out

    return asyncio.run(main())
