"""Serving at a load: the steady state of continuous batching on one replica, from the compiled step's times.

The scheduler modelled (vLLM's default before chunked prefill): between iterations, requests waiting for a slot
are prefilled first, all of them in one pass (up to the free slots the KV cache leaves); otherwise every running
sequence decodes one token. A request's first token comes out of its prefill; its other gen - 1 tokens out of
decode steps. With Poisson arrivals at rate lam, in steady state:
  decode step    t_d(C)  = the mean decode step of C sequences spread evenly over depths prompt .. prompt + gen
                           (the run average of timing.decode_times, at batch C)
  prefill share  rho     = lam x P(k) / k over passes of k prompts, P(k) each: k is the number N >= 1 of
                           arrivals during an iteration (Poisson, mean m = 2 lam R); a request's own pass
                           holds 1 + m
  TPOT           tau     = t_d(C) / (1 - rho)           decode steps, stretched by the prefills between them
  TTFT           theta   = R + P(k), R = ((1 - rho) t_d + rho P(k)) / 2, the rest of the iteration in progress
  Little's law   C       = lam x (gen - 1) x tau
solved as a fixed point; t_d is the step a request sees, with a Poisson number of others decoding beside it.
The KV cache's slots full more than 0.1% of the time, or rho reaching 1, means the replica cannot keep up and
requests queue (saturated). N users at fixed lengths move in one cohort instead (_cohort).
tests/test_serving.py checks both against a discrete-event simulation of the same scheduler: within 10% on TTFT
and TPOT up to 70% of the saturating rate while prefill takes a minority of the time; where prefill dominates
(slow prefill beside fast decode, e.g. Apple GPUs) bursts of prompts stall decode more than the mean share says
and TPOT comes out up to 15-30% low near saturation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .compiled import Compiled
from .memory import GIB

ITERATIONS = 200


@dataclass(frozen=True)
class StepTables:
    """A replica's step times on grids (seconds): decode by batch, prefill by prompts per pass."""

    batch: np.ndarray
    decode_s: np.ndarray
    prefill_batch: np.ndarray
    prefill_s: np.ndarray
    max_concurrency: int  # sequences whose KV cache fits at prompt + gen tokens each

    def decode(self, c):
        return np.interp(c, self.batch, self.decode_s)

    def prefill(self, k):
        return np.interp(k, self.prefill_batch, self.prefill_s)


def step_tables(compiled: Compiled, prompt: int, gen: int) -> StepTables:
    """Every batch up to 256 and a geometric grid beyond (step times are close to affine between them)."""
    hw = compiled.hw
    cap = int(compiled.footprint.max_batch(prompt, prompt + gen, hw.memory_gb * GIB, compiled.tp))
    top = max(cap, 1)
    grid = np.unique(np.concatenate([np.arange(1, min(top, 256) + 1),
                                     np.geomspace(min(top, 256), top, 64).round()])).astype(float)
    t = compiled.times(grid, prompt, prompt, gen)
    return StepTables(grid, t.decode.estimate_s, grid, t.prefill.estimate_s, cap)


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


KV_FULL = 1e-3  # the chance that arriving work finds every KV slot taken, above which a replica is saturated


def kv_full_probability(mean_concurrency, slots: int) -> np.ndarray:
    """P(Poisson(C) >= slots): how often the sequences decoding would fill the KV cache."""
    c = np.atleast_1d(np.asarray(mean_concurrency, dtype=float))
    j = np.arange(max(slots, 1), dtype=float)
    log_fact = np.cumsum(np.log(np.maximum(j, 1)))
    with np.errstate(divide="ignore"):
        below = np.exp(j * np.log(c[:, None]) - c[:, None] - log_fact).sum(1)
    return np.clip(1 - below, 0.0, 1.0).reshape(np.shape(mean_concurrency))


def seen_decode_step(tables: StepTables, mean_concurrency: np.ndarray) -> np.ndarray:
    """The decode step a request sees on average under Poisson arrivals: the number of sequences decoding is
    Poisson with the mean concurrency (as in any infinite-server queue), and a request sees itself plus a Poisson
    number of others, so its mean step is E[t_d(1 + Poisson(C))]. Step times concave in the batch (MoE: experts
    touched) make this differ from t_d(C) at small C."""
    c = np.atleast_1d(np.asarray(mean_concurrency, dtype=float))
    top = int(c.max() + 10 * np.sqrt(c.max()) + 20)
    j = np.arange(top + 1, dtype=float)
    log_fact = np.cumsum(np.log(np.maximum(j, 1)))  # log j!
    with np.errstate(divide="ignore"):
        log_pmf = j * np.log(c[:, None]) - c[:, None] - log_fact
    pmf = np.where(c[:, None] > 0, np.exp(log_pmf), (j == 0).astype(float))
    out = pmf @ tables.decode(1 + j) / pmf.sum(1)
    return out.reshape(np.shape(mean_concurrency)) if np.ndim(mean_concurrency) else out[0]


def steady_state(tables: StepTables, gen: int, rate=None, users=None) -> ServingPoint:
    """Poisson arrivals at `rate` requests/s, or `users` each with one request outstanding (arrays allowed)."""
    if (rate is None) == (users is None):
        raise ValueError("give a rate or a number of users")
    if users is not None:
        return _cohort(tables, gen, np.asarray(users, dtype=float))
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


def _cohort(tables: StepTables, gen: int, users: np.ndarray) -> ServingPoint:
    """N users with fixed prompt and output lengths (a benchmark at fixed concurrency): they start together,
    finish together and send again together, so every prefill pass holds all N prompts and every decode step N
    sequences. Beyond the KV cache's slots they would queue in waves: saturated."""
    n = np.maximum(users, 1)
    prefill, step = tables.prefill(n), tables.decode(n)
    cycle = prefill + max(gen - 1, 0) * step
    return ServingPoint(n / cycle, n, prefill * 1e3, step * 1e3, prefill / cycle, n > tables.max_concurrency,
                        tables.max_concurrency)
