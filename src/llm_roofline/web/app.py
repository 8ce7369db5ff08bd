"""A Starlette app: the calculator page, its two assets, and a JSON API that returns what `--json` returns.

Safe by default: the CLI binds 127.0.0.1; every input goes through the same checks as the command line (one
line of error, HTTP 400); a pasted config is at most 1 MB and 32 levels deep; a sweep at most 20,000 workloads;
no file path is accepted and nothing outside the three packaged assets is served; at most four computations run
at once (the rest wait), each in a worker thread with a time limit; every response carries a strict
Content-Security-Policy (scripts, styles and requests from this origin only).
"""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..errors import UserError
from ..files import strict_json_data

STATIC = Path(__file__).resolve().parent / "static"
ASSETS = {"/": ("index.html", "text/html; charset=utf-8"), "/app.js": ("app.js", "text/javascript"),
          "/app.css": ("app.css", "text/css")}
MAX_BODY = 1 << 20
MAX_DEPTH = 32
MAX_SWEEP = 20_000
TIME_LIMIT_S = 10.0
WORKERS = threading.BoundedSemaphore(4)  # computations at once (the rest wait in the thread pool)
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
INTS = ("batch", "prompt", "context", "gen", "tp", "pp")


class SecurityHeaders(BaseHTTPMiddleware):
    async def dispatch(self, request, call_next):
        response = await call_next(request)
        response.headers.update({"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                                 "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
                                 "Cache-Control": "no-store"})
        return response


def _depth(value, level: int = 0) -> int:
    if level > MAX_DEPTH:
        return level
    if isinstance(value, dict):
        return max([_depth(v, level + 1) for v in value.values()] or [level])
    if isinstance(value, list):
        return max([_depth(v, level + 1) for v in value] or [level])
    return level


def _error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _inputs(request: Request) -> dict:
    """Query parameters, or a JSON body (POST) that may carry a pasted `config` object."""
    args: dict = dict(request.query_params)
    if request.method == "POST":
        size = int(request.headers.get("content-length") or 0)
        if size > MAX_BODY:
            raise UserError(f"request body of {size:,} bytes is over {MAX_BODY:,}")
        body = await request.body()
        if len(body) > MAX_BODY:
            raise UserError(f"request body of {len(body):,} bytes is over {MAX_BODY:,}")
        try:
            data = json.loads(body or b"{}")
        except (ValueError, RecursionError):
            raise UserError("request body is not valid JSON") from None
        if not isinstance(data, dict):
            raise UserError("request body must be a JSON object")
        if _depth(data) > MAX_DEPTH:
            raise UserError(f"request body is nested deeper than {MAX_DEPTH} levels")
        args.update(data)
    for key in INTS:
        value = args.get(key)
        if value in (None, ""):
            args.pop(key, None)
            continue
        whole = isinstance(value, int) and not isinstance(value, bool) or \
            isinstance(value, str) and value.strip().lstrip("+-").isdigit()
        if not whole:
            raise UserError(f"{key} must be a whole number, got {str(value)[:40]!r}")
        args[key] = int(value)
    return args


def _model(args: dict):
    """A catalog or repo name, or a pasted config object: never a file on this machine."""
    from ..architecture import load_model, spec_from_config

    if isinstance(args.get("config"), dict):
        return spec_from_config(args["config"], str(args.get("name") or "pasted-config")[:80], "pasted config")
    name = str(args.get("model") or "llama-3.1-8b")[:200]
    if name.startswith((".", "~", "/")) or "\\" in name or name.count("/") > 1 or Path(name).exists():
        raise UserError(f"model {name[:80]!r}: give a catalog id or a Hugging Face repo id (files are not read here)")
    return load_model(name)


def _device(name) -> str:
    from ..hardware import load_hardware

    text = str(name or "h100")[:80]
    if text.endswith(".json") or "/" in text or "\\" in text or Path(text).exists():
        raise UserError(f"hardware {text!r}: give a catalog id or alias (files are not read here)")
    return load_hardware(text)


def _workload(args: dict) -> dict:
    out = {k: args[k] for k in INTS if k in args}
    for key in ("weights", "kv_cache", "engine"):
        if args.get(key):
            out[key] = str(args[key])[:40]
    return out


def _predict(args: dict) -> dict:
    from ..explain import explain
    from ..roofline import predict

    p = predict(_model(args), _device(args.get("hardware")), **_workload(args))
    data = p.to_dict()
    data["explain"] = explain(p)
    return data


def _compare(args: dict) -> list:
    from ..roofline import predict

    names = [n for n in str(args.get("hardware") or "h100").split(",") if n.strip()][:32]
    spec = _model(args)
    work = _workload(args)
    out = [predict(spec, _device(n), **work).to_dict() for n in names]
    for d in out:
        d.pop("operators")
    return out


def _sweep(args: dict) -> dict:
    import numpy as np

    from ..sweeps import sweep

    batches = [int(b) for b in str(args.get("batches") or "1,2,4,8,16,32,64,128,256").split(",") if b.strip()]
    if len(batches) > MAX_SWEEP:
        raise UserError(f"at most {MAX_SWEEP:,} batches")
    work = _workload(args)
    work.pop("batch", None)
    s = sweep(_model(args), _device(args.get("hardware")), batch=np.array(batches), **work)
    return s.to_dict()


def _bounded(fn, args):
    with WORKERS:
        return fn(args)


async def _api(request: Request, fn) -> Response:
    try:
        args = await _inputs(request)
        data = await asyncio.wait_for(run_in_threadpool(_bounded, fn, args), TIME_LIMIT_S)
    except UserError as exc:
        return _error(str(exc))
    except asyncio.TimeoutError:
        return _error(f"the computation took over {TIME_LIMIT_S:g} s", 503)
    clean, _ = strict_json_data(data)
    return JSONResponse(clean)


async def predict_endpoint(request: Request) -> Response:
    return await _api(request, _predict)


async def compare_endpoint(request: Request) -> Response:
    return await _api(request, _compare)


async def sweep_endpoint(request: Request) -> Response:
    return await _api(request, _sweep)


async def catalog_endpoint(request: Request) -> Response:
    from .. import catalog
    from ..engines import engine_names
    from ..formats import format_ids

    return JSONResponse({
        "models": catalog.model_ids(),
        "hardware": [{"id": r["id"], "name": r["name"], "alias": min([r["id"], *r["aliases"]], key=len)}
                     for r in catalog.hardware_records()],
        "formats": [f for f in format_ids() if "<" not in f], "engines": [e for e in engine_names() if e != "default"],
    })


def _asset(path: str):
    name, media = ASSETS[path]
    content = (STATIC / name).read_bytes()

    async def serve(request: Request) -> Response:
        return Response(content, media_type=media)

    return serve


def create_app() -> Starlette:
    routes = [Route(path, _asset(path)) for path in ASSETS]
    routes += [Route("/api/predict", predict_endpoint, methods=["GET", "POST"]),
               Route("/api/compare", compare_endpoint, methods=["GET", "POST"]),
               Route("/api/sweep", sweep_endpoint, methods=["GET", "POST"]),
               Route("/api/catalog", catalog_endpoint)]
    return Starlette(routes=routes, middleware=[Middleware(SecurityHeaders)])
