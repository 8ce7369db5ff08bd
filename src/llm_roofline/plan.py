"""plan(): the cheapest deployments that meet latency targets under a load.

Searches device x format x tensor parallel x pipeline stages x expert parallel (mixtures of experts) x replicas
(devices = max(tp, ep) x pp x replicas, at most max_devices): each layout is compiled once, its step times tabulated (serving.step_tables), and the steady state
of every replica count evaluated at once (serving.steady_state; a rate is split evenly over the replicas, users
as evenly as they go). A configuration is feasible when it fits, keeps up with the load, and meets every target
given. Feasible ones come cheapest first: by $/hour where the device has a price, else by devices.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .architecture import ModelSpec, load_model
from .compiled import compile, check_workload
from .errors import UserError
from .hardware import Hardware, load_hardware

PRICES_JSON = Path(__file__).resolve().parent / "catalog" / "prices.json"


def shipped_prices() -> dict[str, dict]:
    """Public per-hour prices by catalog device id: {usd_per_hour, source, date, ...}."""
    return json.loads(PRICES_JSON.read_text())["prices"]


def resolve_prices(overrides: dict[str, float] | None) -> dict[str, tuple[float, str]]:
    """Device id -> (USD per device hour, where the figure comes from); the caller's figures win."""
    out = {k: (v["usd_per_hour"], f"{v['source']} ({v['date']})") for k, v in shipped_prices().items()}
    for name, usd in (overrides or {}).items():
        if not (isinstance(usd, (int, float)) and math.isfinite(usd) and usd >= 0):
            raise UserError(f"price for {name!r} must be a number of USD per hour >= 0, got {usd!r}")
        out[load_hardware(name).id] = (float(usd), "given")
    return out


@dataclass(frozen=True)
class PlanConfig:
    hardware: str
    devices: int  # tp x pp x replicas
    replicas: int
    tp: int
    pp: int
    weights: str
    concurrency: float  # sequences decoding per replica, on average
    tpot_ms: float
    ttft_ms: float
    tok_s_per_user: float
    throughput_tok_s: float  # output tokens per second, all replicas
    cost_per_hour_usd: float | None
    cost_per_mtok_usd: float | None  # per million output tokens
    price_source: str | None
    binding: str  # the target closest to failing ("load": cannot keep up; "none": no targets given)
    feasible: bool
    saturated: bool  # cannot keep up with the load: requests queue
    misses: dict = field(default_factory=dict)  # target -> how far off (1.25: 25% over the limit)
    ep: int = 1  # expert-parallel devices per stage (MoE; 1: none); devices = max(tp, ep) x pp x replicas

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PlanResult:
    model: str
    load: dict
    targets: dict
    configs: tuple[PlanConfig, ...]  # feasible, cheapest first
    nearest: PlanConfig | None  # with none feasible: the candidate that misses its targets by least
    candidates: int
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"model": self.model, "load": self.load, "targets": self.targets,
                "configs": [c.to_dict() for c in self.configs],
                "nearest": self.nearest.to_dict() if self.nearest else None, "candidates": self.candidates,
                "notes": list(self.notes)}


def _powers(limit: int) -> list[int]:
    return [2 ** i for i in range(int(math.log2(limit)) + 1)] if limit >= 1 else []


def _expert_parallel_sizes(spec: ModelSpec, tp: int, limit: int) -> list[int]:
    """1, and for a mixture of experts the powers of two above tp, multiples of it and divisors of the experts,
    up to limit devices."""
    if spec.moe is None:
        return [1]
    return [1] + [e for e in _powers(limit) if e > tp and not e % tp and not spec.moe.n_experts % e]


def _check_targets(**targets) -> dict[str, float]:
    out = {}
    for name, value in targets.items():
        if value is None:
            continue
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise UserError(f"--{name.replace('_', '-')} must be a positive number, got {value!r}")
        out[name] = float(value)
    return out


def plan(model: str | Path | ModelSpec, hardware: list[str | Path | Hardware] | None = None, *,
         weights: list[str] | None = None, prompt: int = 1024, gen: int = 256, rate: float | None = None,
         users: int | None = None, tpot_ms: float | None = None, min_tok_s: float | None = None,
         ttft_ms: float | None = None, max_devices: int = 8, engine: str | None = None,
         kv_cache: str | None = None, prices: dict[str, float] | None = None, scheduler: str = "chunked",
         token_budget: int | None = None, progress=None) -> PlanResult:
    """The configurations that serve `rate` requests/s (or `users` concurrent users; neither: one user) of
    `prompt` tokens in and `gen` out within the targets, cheapest first. scheduler: "chunked" (vLLM V1: decodes
    first, prompts in chunks filling a token budget per iteration; token_budget default: vLLM's for the device)
    or "prefill-first" (waiting prompts prefilled in a pass of their own). progress: called (done, total, label)
    per device and format searched."""
    from .serving import SCHEDULERS, step_tables, steady_state

    check_workload(prompt=prompt, gen=gen)
    if rate is not None and users is not None:
        raise UserError("give a load as --rate or as --users, not both")
    if rate is not None and not (isinstance(rate, (int, float)) and math.isfinite(rate) and 0 < rate <= 1e6):
        raise UserError(f"--rate must be requests per second in (0, 1e6], got {rate!r}")
    if users is not None:
        check_workload(users=users)
    if scheduler not in SCHEDULERS:
        raise UserError(f"--scheduler must be one of {', '.join(SCHEDULERS)}, got {scheduler!r}")
    if token_budget is not None and not (isinstance(token_budget, int) and 1 <= token_budget <= 1 << 20):
        raise UserError(f"--token-budget must be a whole number of tokens in 1..{1 << 20:,}, got {token_budget!r}")
    if not (isinstance(max_devices, int) and 1 <= max_devices <= 4096):
        raise UserError(f"--max-devices must be a whole number in 1..4096, got {max_devices!r}")
    targets = _check_targets(tpot_ms=tpot_ms, min_tok_s=min_tok_s, ttft_ms=ttft_ms)
    load = {"rate_rps": rate} if rate is not None else {"users": users or 1}
    load.update(prompt=prompt, gen=gen, scheduler=scheduler)
    spec = load_model(model)
    devices = [load_hardware(h) for h in (hardware or ["h100"])]
    price = resolve_prices(prices)
    formats = weights or [None]
    configs: list[PlanConfig] = []
    candidates = 0
    report = progress or (lambda done, total, label: None)
    for n, (hw, fmt) in enumerate((h, f) for h in devices for f in formats):
        report(n, len(devices) * len(formats), f"{hw.id} {fmt or ''}")
        for pp in [p for p in _powers(max_devices) if p <= spec.n_layers]:
            for tp, ep in ((t, e) for t in _powers(max_devices // pp)
                           for e in _expert_parallel_sizes(spec, t, max_devices // pp)):
                try:
                    c = compile(spec, hw, weights=fmt, kv_cache=kv_cache, tp=tp, pp=pp, engine=engine, ep=ep)
                except UserError as exc:
                    if "does not split" in str(exc):
                        continue  # heads that tp does not divide: not a layout an engine runs
                    raise
                tables = step_tables(c, prompt, gen, token_budget)
                if tables.max_concurrency < 1:
                    continue  # does not fit one sequence
                replicas = np.arange(1, max_devices // c.devices + 1)
                candidates += replicas.size
                if rate is not None:
                    s = steady_state(tables, gen, rate=rate / replicas, scheduler=scheduler)
                else:
                    s = steady_state(tables, gen, users=np.ceil((users or 1) / replicas))
                for i, r in enumerate(replicas):
                    configs.append(_config(c, int(r), s, i, gen, targets, price))
    feasible = sorted((c for c in configs if c.feasible),
                      key=lambda c: (c.cost_per_hour_usd is None, c.cost_per_hour_usd or 0.0, c.devices, c.tpot_ms))
    nearest = None
    if not feasible and configs:
        nearest = min(configs, key=lambda c: (max((math.inf if v is None else v for v in c.misses.values()), default=1.0),
                                              c.devices))
    notes = []
    if not configs:
        notes.append(f"{spec.id} does not fit on {', '.join(h.id for h in devices)} with up to {max_devices} devices")
    if any(c.cost_per_hour_usd is None for c in feasible):
        notes.append("devices without a price are ranked after priced ones, by device count; add --price DEVICE=USD")
    return PlanResult(spec.id, load, targets, tuple(feasible), nearest, candidates, tuple(notes))


def _config(c, replicas: int, s, i: int, gen: int, targets: dict, price: dict) -> PlanConfig:
    tpot, ttft = float(s.tpot_ms[i]), float(s.ttft_ms[i])
    per_user = 1e3 / tpot if tpot > 0 else math.inf
    throughput = float(s.rate_rps[i]) * gen * replicas
    saturated = bool(s.saturated[i])
    ratios = {}  # value / limit, > 1 misses
    if "tpot_ms" in targets:
        ratios["tpot_ms"] = tpot / targets["tpot_ms"]
    if "min_tok_s" in targets:
        ratios["min_tok_s"] = targets["min_tok_s"] / per_user
    if "ttft_ms" in targets:
        ratios["ttft_ms"] = ttft / targets["ttft_ms"]
    misses = {k: v for k, v in ratios.items() if v > 1}
    if saturated:
        misses["load"] = math.inf
    devices = replicas * c.devices
    usd, source = price.get(c.hw.id, (None, None))
    cost = usd * devices if usd is not None else None
    per_mtok = cost / (throughput * 3600) * 1e6 if cost is not None and throughput > 0 else None
    binding = max(ratios, key=ratios.get) if ratios else ("load" if saturated else "none")
    return PlanConfig(c.hw.id, devices, replicas, c.tp, c.pp, c.fmt.id, float(s.concurrency[i]), tpot, ttft,
                      per_user, throughput, cost, per_mtok, source, binding, not misses, saturated,
                      {k: (v if math.isfinite(v) else None) for k, v in misses.items()}, c.ep)
