"""Serving at a load: the steady state of continuous batching on one replica, from the compiled step's times.

Two schedulers (steady_state(scheduler=...)):
  chunked        vLLM V1: each iteration decodes every running sequence and fills the rest of a token budget with
                 waiting prompts' tokens, in chunks; the prompts waiting form a Markov chain over iterations
                 (_chunked's docstring), the iteration being the compiled step of both at once
                 (timing.mixed_step_s).
  prefill-first  vLLM before chunked prefill: between iterations, requests waiting for a slot are prefilled
                 first, all of them in one pass (up to the free slots the KV cache leaves); otherwise every running
                 sequence decodes one token. With Poisson arrivals at rate lam, in steady state:
  decode step    t_d(C)  = the mean decode step of C sequences spread evenly over depths prompt .. prompt + gen
                           (the run average of timing.decode_times, at batch C)
  prefill share  rho     = lam x P(k) / k over passes of k prompts, P(k) each: k is the number N >= 1 of
                           arrivals during an iteration (Poisson, mean m = 2 lam R); a request's own pass
                           holds 1 + m
  TPOT           tau     = t_d(C) / (1 - rho)           decode steps, stretched by the prefills between them
  TTFT           theta   = R + P(k), R = ((1 - rho) t_d + rho P(k)) / 2, the rest of the iteration in progress
  Little's law   C       = lam x (gen - 1) x tau
solved as a fixed point; t_d is the step a request sees, with a Poisson number of others decoding beside it.
The KV cache's slots full more than 0.1% of the time, or the prompts' work reaching the time (or the token room)
there is, means the replica cannot keep up and requests queue (saturated). N users at fixed lengths move in one
cohort instead (_cohort). tests/test_serving.py checks both against discrete-event simulations of the same
schedulers (docs/method.md gives the agreement).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .compiled import Compiled
from .memory import GIB

ITERATIONS = 200


@dataclass(frozen=True)
class StepTables:
    """A replica's step times on grids (seconds): decode by batch, prefill by prompts per pass, and a chunked
    scheduler's iteration by (sequences decoding, prompt tokens prefilled beside them)."""

    batch: np.ndarray
    decode_s: np.ndarray
    prefill_batch: np.ndarray
    prefill_s: np.ndarray
    max_concurrency: int  # sequences whose KV cache fits at prompt + gen tokens each
    prompt: int = 0
    token_budget: int = 0  # tokens one iteration carries (decodes and prefill chunks): max_num_batched_tokens
    mixed_batch: np.ndarray | None = None  # sequences decoding (0 included)
    mixed_tokens: np.ndarray | None = None  # prompt tokens in the iteration (0 included)
    mixed_s: np.ndarray | None = None  # (mixed_batch, mixed_tokens)

    def decode(self, c):
        return np.interp(c, self.batch, self.decode_s)

    def prefill(self, k):
        return np.interp(k, self.prefill_batch, self.prefill_s)

    def mixed(self, c, x):
        """An iteration with c sequences decoding and x prompt tokens, interpolated on the grid (bilinear)."""
        c, x = np.broadcast_arrays(np.asarray(c, dtype=float), np.asarray(x, dtype=float))
        gb, gx = self.mixed_batch, self.mixed_tokens
        i = np.clip(np.searchsorted(gb, c, side="right") - 1, 0, gb.size - 2)
        j = np.clip(np.searchsorted(gx, x, side="right") - 1, 0, gx.size - 2)
        fc = np.clip((c - gb[i]) / (gb[i + 1] - gb[i]), 0.0, 1.0)
        fx = np.clip((x - gx[j]) / (gx[j + 1] - gx[j]), 0.0, 1.0)
        t = self.mixed_s
        return ((1 - fc) * ((1 - fx) * t[i, j] + fx * t[i, j + 1])
                + fc * ((1 - fx) * t[i + 1, j] + fx * t[i + 1, j + 1]))


def default_token_budget(hw) -> int:
    """vLLM's default max_num_batched_tokens for its OpenAI-compatible server: 8192 on H100 and H200, 2048 on
    other devices (vllm-project/vllm pull request 12369, "[V1] Increase default batch size for H100/H200")."""
    return 8192 if any(k in hw.id for k in ("h100", "h200")) else 2048


def step_tables(compiled: Compiled, prompt: int, gen: int, token_budget: int | None = None) -> StepTables:
    """Every batch up to 256 and a geometric grid beyond (step times are close to affine between them), and the
    chunked scheduler's iterations up to the token budget (default: default_token_budget)."""
    from .timing import mixed_step_s

    hw = compiled.hw
    cap = int(compiled.footprint.max_batch(prompt, prompt + gen, hw.memory_gb * GIB, compiled.tp))
    top = max(cap, 1)
    grid = np.unique(np.concatenate([np.arange(1, min(top, 256) + 1),
                                     np.geomspace(min(top, 256), top, 64).round()])).astype(float)
    t = compiled.times(grid, prompt, prompt, gen)
    budget = int(token_budget or default_token_budget(hw))
    mb = np.unique(np.concatenate([[0.0], np.arange(1, min(top, 32) + 1),
                                   np.geomspace(min(top, 32), top, 48).round()])).astype(float)
    mx = np.unique(np.concatenate([np.arange(0, 33), np.geomspace(32, max(budget, 33), 40).round(),
                                   [prompt] if prompt <= budget else []])).astype(float)
    c, x = np.meshgrid(mb, mx, indexing="ij")
    whole = x > prompt  # several whole prompts in the iteration, else a chunk of one at its mean offset
    n = np.where(whole, x / prompt, np.minimum(x, 1.0))
    tokens = np.where(whole, prompt, x)
    depth = np.where(whole, 0.0, np.maximum(prompt - x, 0.0) / 2)
    mixed = mixed_step_s(compiled.device, compiled.efficiency, c, prompt + gen / 2, n, tokens, depth,
                         hw.bandwidth_gbps).reshape(c.shape)
    return StepTables(grid, t.decode.estimate_s, grid, t.prefill.estimate_s, cap, prompt, budget, mb, mx, mixed)


@dataclass(frozen=True)
class ServingPoint:
    """The steady state of one replica: arrays over the loads asked for."""

    rate_rps: np.ndarray  # requests per second this replica completes
    concurrency: np.ndarray  # sequences decoding, on average
    ttft_ms: np.ndarray
    tpot_ms: np.ndarray
    prefill_share: np.ndarray  # of the replica's time
    saturated: np.ndarray  # cannot keep up: requests queue without bound
    max_concurrency: int

    @property
    def tok_s_per_user(self) -> np.ndarray:
        return 1e3 / self.tpot_ms

    def to_dict(self) -> dict:
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in asdict(self).items()}


SCHEDULERS = ("prefill-first", "chunked")
KV_FULL = 1e-3  # the chance that arriving work finds every KV slot taken, above which a replica is saturated


def kv_full_probability(mean_concurrency, slots: int) -> np.ndarray:
    """P(Poisson(C) >= slots): how often the sequences decoding would fill the KV cache."""
    c = np.atleast_1d(np.asarray(mean_concurrency, dtype=float))
    below = _poisson_pmf(c, max(slots, 1) - 1).sum(1)
    return np.clip(1 - below, 0.0, 1.0).reshape(np.shape(mean_concurrency))


def seen_decode_step(tables: StepTables, mean_concurrency: np.ndarray) -> np.ndarray:
    """The decode step a request sees on average under Poisson arrivals: the number of sequences decoding is
    Poisson with the mean concurrency (as in any infinite-server queue), and a request sees itself plus a Poisson
    number of others, so its mean step is E[t_d(1 + Poisson(C))]. Step times concave in the batch (MoE: experts
    touched) make this differ from t_d(C) at small C."""
    c = np.atleast_1d(np.asarray(mean_concurrency, dtype=float))
    top = int(c.max() + 10 * np.sqrt(c.max()) + 20)
    pmf = _poisson_pmf(c, top)
    out = pmf @ tables.decode(1 + np.arange(top + 1, dtype=float)) / pmf.sum(1)
    return out.reshape(np.shape(mean_concurrency)) if np.ndim(mean_concurrency) else out[0]


def steady_state(tables: StepTables, gen: int, rate=None, users=None, scheduler: str = "prefill-first") -> ServingPoint:
    """Poisson arrivals at `rate` requests/s, or `users` each with one request outstanding (arrays allowed).
    scheduler: "prefill-first" (waiting prompts prefilled in a pass of their own) or "chunked" (every iteration
    decodes the running sequences and fills the rest of a token budget with prompt tokens: vLLM V1)."""
    if (rate is None) == (users is None):
        raise ValueError("give a rate or a number of users")
    if scheduler not in SCHEDULERS:
        raise ValueError(f"scheduler must be one of {', '.join(SCHEDULERS)}, got {scheduler!r}")
    if users is not None:
        return _cohort(tables, gen, np.asarray(users, dtype=float))
    if scheduler == "chunked":  # in slices of rates: each holds a transition matrix per rate
        lam = np.atleast_1d(np.asarray(rate, dtype=float))
        parts = [_chunked(tables, gen, lam[i:i + 32]) for i in range(0, lam.size, 32)]
        return ServingPoint(*(np.concatenate([getattr(q, f) for q in parts]) for f in (
            "rate_rps", "concurrency", "ttft_ms", "tpot_ms", "prefill_share", "saturated")), tables.max_concurrency)
    lam = np.asarray(rate, dtype=float)
    decode_tokens = max(gen - 1, 0)
    conc = np.minimum(lam * decode_tokens * tables.decode(1), tables.max_concurrency)
    tau = theta = rho = np.zeros_like(lam)
    k_pass = np.ones_like(lam)
    for _ in range(ITERATIONS):
        t_d = seen_decode_step(tables, conc)
        resid = np.zeros_like(lam)
        k = k_pass = np.ones_like(lam)
        for _ in range(3):  # the pass's prompts and the wait for the iteration in progress, together
            rho = np.minimum(lam * tables.prefill(k_pass) / k_pass, 0.999)
            resid = ((1 - rho) * t_d + rho * tables.prefill(k)) / 2
            m = 2 * lam * resid  # others arriving during one (length-biased) iteration, Poisson
            k = 1 + m  # the pass a request is in: itself and those others
            k_pass = np.where(m > 1e-9, m / -np.expm1(-np.maximum(m, 1e-12)), 1.0)  # a pass's size: N | N >= 1
        tau = t_d / (1 - rho)
        theta = resid + tables.prefill(k)
        conc = 0.5 * conc + 0.5 * np.minimum(lam * decode_tokens * tau, tables.max_concurrency * 1.5)
    rho_raw = lam * tables.prefill(k_pass) / k_pass
    over = lam * decode_tokens * tau > tables.max_concurrency * (1 + 1e-9)
    # Poisson occupancy reaching the KV cache's slots: from there requests wait for a slot as well as for the
    # iteration in progress, which the closed forms leave out (a discrete-event run shows the wait growing fast)
    full = kv_full_probability(conc, tables.max_concurrency) > KV_FULL
    saturated = (rho_raw >= 0.999) | over | full | (tables.max_concurrency < 1)
    return ServingPoint(lam, conc, theta * 1e3, tau * 1e3, rho, saturated, tables.max_concurrency)


def _poisson_pmf(mean: np.ndarray, top: int) -> np.ndarray:
    """P(N = j) for j = 0..top, one row per mean."""
    m = np.atleast_1d(np.asarray(mean, dtype=float))
    j = np.arange(top + 1, dtype=float)
    log_fact = np.cumsum(np.log(np.maximum(j, 1)))
    with np.errstate(divide="ignore"):
        log_pmf = j * np.log(m[:, None]) - m[:, None] - log_fact
    return np.where(m[:, None] > 0, np.exp(log_pmf), (j == 0).astype(float))


def _chunked(tables: StepTables, gen: int, lam: np.ndarray) -> ServingPoint:
    """Chunked prefill with decode first (vLLM V1): an iteration decodes every running sequence (C of them) and
    prefills up to budget - C prompt tokens, first come first served, a prompt's chunks carried on. The prompts
    waiting at the start of an iteration, N, form a Markov chain over iterations:
      iteration      T_N    = t(C, min(N P, budget - C)), the compiled step of C decodes beside the prompt tokens
      next           N'     = N - (prompts' worth of tokens prefilled) + Poisson(lam T_N) arrivals
    whose stationary distribution pi gives
      TPOT           tau    = the mean iteration a decoding request sees, itself among the C + 1 decoding: the
                              chain run from the state after the iteration that prefilled it (prompts that
                              arrived meanwhile are prefilled beside its first decodes)
      TTFT           theta  = L / lam (Little's law on the prompts waiting), L their time-average number:
                              sum pi_N (N T_N + lam T_N^2 / 2) / sum pi_N T_N
      Little's law   C      = lam x (gen - 1) x tau
    solved as a fixed point in C. A prompt's tokens arriving faster than the budget the decodes leave (the chain
    piling up at its top), or the KV cache's slots filling, saturates the replica."""
    p, budget = float(tables.prompt), float(tables.token_budget)
    decode_tokens = max(gen - 1, 0)
    lam = np.atleast_1d(lam)
    conc = np.minimum(lam * decode_tokens * tables.decode(1), tables.max_concurrency)
    # prompts waiting that the chain follows (three budgets' worth, at most 160): beyond, the replica is saturated
    top = min(int(3 * budget / p + 24), 160)
    n_states = np.arange(top + 1, dtype=float)
    tau = theta = pi = None
    for _ in range(30):
        room = np.maximum(budget - conc, 1.0)
        x = np.minimum(n_states[None, :] * p, room[:, None])  # (rates, N)
        t_n = tables.mixed(conc[:, None], x)
        m = _transitions(n_states, x / p, lam[:, None] * t_n, top)
        pi = _stationary(m)
        mean_t = (pi * t_n).sum(1)
        seen = tables.mixed(conc[:, None] + 1, np.minimum(n_states[None, :] * p, np.maximum(room - 1, 0)[:, None]))
        tau = _decode_run(pi, x / p, m, seen, decode_tokens)
        waiting = (pi * (n_states[None, :] * t_n + lam[:, None] * t_n ** 2 / 2)).sum(1) / mean_t
        theta = waiting / lam
        conc = 0.5 * conc + 0.5 * np.minimum(lam * decode_tokens * tau, tables.max_concurrency * 1.5)
    share = lam * p * mean_t / np.maximum(budget - conc, 1e-9)  # of the prompt-token room the decodes leave
    over = lam * decode_tokens * tau > tables.max_concurrency * (1 + 1e-9)
    full = kv_full_probability(conc, tables.max_concurrency) > KV_FULL
    piled = pi[:, -4:].sum(1) > 1e-3  # the chain reaching its top: prompts pile up
    saturated = (share >= 0.999) | piled | over | full | (tables.max_concurrency < 1)
    return ServingPoint(lam, conc, theta * 1e3, tau * 1e3, np.clip(share, 0.0, 1.0), saturated,
                        tables.max_concurrency)


def _decode_run(pi: np.ndarray, served: np.ndarray, m: np.ndarray, seen: np.ndarray, steps: int,
                horizon: int = 128) -> np.ndarray:
    """The mean iteration over a request's decode: it starts after the iteration that prefilled it (the chain's
    state weighted by the prompts an iteration prefills, one step on: the prompts that arrived meanwhile wait
    beside it) and follows the chain; after `horizon` iterations the chain is taken as stationary."""
    if steps < 1:
        return (pi * seen).sum(1)
    start = pi * served
    dist = np.einsum("in,inm->im", start / np.maximum(start.sum(1, keepdims=True), 1e-300), m)
    total = np.zeros(pi.shape[0])
    k = min(steps, horizon)
    for _ in range(k):
        total += (dist * seen).sum(1)
        dist = np.einsum("in,inm->im", dist, m)
    return (total + (steps - k) * (pi * seen).sum(1)) / steps


def _transitions(n_states: np.ndarray, served: np.ndarray, arrivals_mean: np.ndarray, top: int) -> np.ndarray:
    """(rates, N, N') transition probabilities: from N prompts waiting, served of them prefilled (fractions
    carried as a split between the neighbouring whole numbers), plus Poisson arrivals; the top absorbs the rest."""
    rates, size = served.shape[0], top + 1
    left = n_states[None, :] - served  # prompts (and parts) still waiting after the iteration
    lo = np.floor(left).astype(int)
    frac = left - lo
    pmf = _poisson_pmf(arrivals_mean.reshape(-1), top).reshape(rates, size, size)  # (rates, N, arrivals)
    out = np.zeros((rates, size, size))
    a = np.arange(size)
    for shift, weight in ((0, 1 - frac), (1, frac)):
        dest = np.minimum(lo[:, :, None] + shift + a[None, None, :], top)
        np.add.at(out, (np.arange(rates)[:, None, None], np.arange(size)[None, :, None], dest),
                  pmf * weight[:, :, None])
    out[:, :, -1] += 1 - out.sum(2)  # arrivals beyond the top
    return out


def _stationary(m: np.ndarray) -> np.ndarray:
    """The stationary distribution of each (N, N) transition matrix: pi (M - I) = 0, sum pi = 1."""
    size = m.shape[1]
    a = np.swapaxes(m, 1, 2) - np.eye(size)[None]
    a[:, -1, :] = 1.0
    b = np.zeros((m.shape[0], size))
    b[:, -1] = 1.0
    pi = np.linalg.solve(a, b[..., None])[..., 0]
    return np.clip(pi, 0.0, None) / np.clip(pi, 0.0, None).sum(1, keepdims=True)


def _cohort(tables: StepTables, gen: int, users: np.ndarray) -> ServingPoint:
    """N users with fixed prompt and output lengths (a benchmark at fixed concurrency): they start together,
    finish together and send again together, so every prefill pass holds all N prompts and every decode step N
    sequences. Beyond the KV cache's slots they would queue in waves: saturated."""
    n = np.maximum(users, 1)
    prefill, step = tables.prefill(n), tables.decode(n)
    cycle = prefill + max(gen - 1, 0) * step
    return ServingPoint(n / cycle, n, prefill * 1e3, step * 1e3, prefill / cycle, n > tables.max_concurrency,
                        tables.max_concurrency)
