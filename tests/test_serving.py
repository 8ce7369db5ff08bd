"""The steady-state serving model against a discrete-event simulation of the same scheduler (not a fit): Poisson
arrivals, prefill-first continuous batching, the KV cache's slots, the compiled step's times per iteration."""

from collections import deque

import numpy as np
import pytest

import llm_roofline as lr
from llm_roofline.serving import step_tables, steady_state


def simulate(tables, gen, rate=None, users=None, n=5000, seed=0):
    """Mean TTFT and TPOT (ms) of requests after the first fifth (warm-up). Between iterations: waiting requests
    are prefilled first, all of them up to the free slots, in one pass of P(k); else every running sequence
    decodes one token in t_d(running)."""
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1 / rate, n)) if rate else None
    t, nxt, done, issued = 0.0, 0, 0, 0
    waiting, running = deque(), []
    start, ttft, e2e = np.zeros(n), np.zeros(n), np.zeros(n)
    for _ in range(users or 0):  # a closed loop: each user sends again when its request ends
        waiting.append(issued)
        issued += 1
    while done < n:
        while arrivals is not None and nxt < n and arrivals[nxt] <= t:
            start[nxt] = arrivals[nxt]
            waiting.append(nxt)
            nxt += 1
        free = tables.max_concurrency - len(running)
        if waiting and free > 0:
            batch = [waiting.popleft() for _ in range(min(len(waiting), free))]
            t += float(tables.prefill(len(batch)))
            for r in batch:
                ttft[r] = t - start[r]
                running.append([r, 1])
        elif running:
            t += float(tables.decode(len(running)))
            keep = []
            for s in running:
                s[1] += 1
                if s[1] < gen:
                    keep.append(s)
                    continue
                e2e[s[0]] = t - start[s[0]]
                done += 1
                if users and issued < n:
                    start[issued] = t
                    waiting.append(issued)
                    issued += 1
            running = keep
        else:
            t = arrivals[nxt]
    kept = slice(n // 5, n)
    return ttft[kept].mean() * 1e3, ((e2e - ttft)[kept] / (gen - 1)).mean() * 1e3


def simulate_chunked(tables, gen, rate, n=5000, seed=0):
    """Mean TTFT and TPOT (ms) under chunked prefill, decode first: each iteration decodes every running sequence
    and gives the rest of the token budget to waiting prompts in arrival order (a prompt may span iterations;
    one is admitted while the KV cache has a slot for it); an iteration of c decodes and x prompt tokens takes
    t(c, x). A prompt's first token comes out of the iteration that finishes it."""
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1 / rate, n))
    t, nxt, done = 0.0, 0, 0
    waiting, running = deque(), []  # waiting: [request, prompt tokens left]; running: [request, tokens out]
    ttft, e2e = np.zeros(n), np.zeros(n)
    step = {}  # t(c, x), looked up once per pair

    def mixed(c, x):
        if (c, x) not in step:
            step[c, x] = float(tables.mixed(c, x))
        return step[c, x]

    while done < n:
        while nxt < n and arrivals[nxt] <= t:
            waiting.append([nxt, tables.prompt])
            nxt += 1
        if not running and not waiting:
            t = arrivals[nxt]
            continue
        c = len(running)
        room, x, slots = max(tables.token_budget - c, 0), 0, tables.max_concurrency - c
        finished = []
        for w in waiting:
            if room == 0 or slots == 0:
                break
            take = min(room, w[1])
            w[1] -= take
            room -= take
            x += take
            slots -= 1
            if w[1] == 0:
                finished.append(w)
        t += mixed(c, x)
        keep = []
        for s in running:
            s[1] += 1
            if s[1] < gen:
                keep.append(s)
                continue
            e2e[s[0]] = t - arrivals[s[0]]
            done += 1
        for w in finished:
            waiting.remove(w)
            ttft[w[0]] = t - arrivals[w[0]]
            keep.append([w[0], 1])
        running = keep
    kept = slice(n // 5, n)
    return ttft[kept].mean() * 1e3, ((e2e - ttft)[kept] / (gen - 1)).mean() * 1e3


CASES = [  # dense on HBM and on GDDR (a small KV cache), MoE (concave step times), 70B tensor parallel
    ("llama-3.1-8b", "h100", 512, 64, {}),
    ("llama-3.1-8b", "4090", 1024, 128, {}),
    ("qwen3-30b-a3b", "h100", 256, 64, {}),
    ("llama-3.1-70b", "h100", 2048, 256, {"tp": 4}),
]


def saturating_rate(tables, gen, scheduler="prefill-first"):
    rates = np.geomspace(0.05, 500, 300)
    s = steady_state(tables, gen, rate=rates, scheduler=scheduler)
    assert s.saturated.any() and not s.saturated[0]
    return rates[np.argmax(s.saturated)]


@pytest.mark.parametrize("model,device,prompt,gen,options", CASES)
def test_steady_state_matches_the_simulation_below_saturation(model, device, prompt, gen, options):
    tables = step_tables(lr.compile(model, device, **options), prompt, gen)
    top = saturating_rate(tables, gen)
    for fraction in (0.1, 0.3, 0.5, 0.7):
        rate = fraction * top
        s = steady_state(tables, gen, rate=np.array([rate]))
        ttft, tpot = simulate(tables, gen, rate=rate)
        assert s.ttft_ms[0] == pytest.approx(ttft, rel=0.10), (fraction, s.ttft_ms[0], ttft)
        assert s.tpot_ms[0] == pytest.approx(tpot, rel=0.10), (fraction, s.tpot_ms[0], tpot)
        assert not s.saturated[0]
        # Little's law: the sequences decoding are the rate times the time each spends decoding
        assert s.concurrency[0] == pytest.approx(rate * (gen - 1) * s.tpot_ms[0] / 1e3, rel=0.02)


CHUNKED = [(*case, (0.1, 0.5, 0.7, 0.85)) for case in CASES] + [  # and where prefill dominates: Apple's GPU
    ("llama-3.1-8b", "m2-ultra", 1024, 128, {"weights": "q4_k_m", "engine": "llama.cpp-metal"}, (0.1, 0.3, 0.5))]


@pytest.mark.parametrize("model,device,prompt,gen,options,fractions", CHUNKED)
def test_chunked_prefill_steady_state_matches_the_simulation(model, device, prompt, gen, options, fractions):
    tables = step_tables(lr.compile(model, device, **options), prompt, gen)
    top = saturating_rate(tables, gen, "chunked")
    for fraction in fractions:
        rate = fraction * top
        s = steady_state(tables, gen, rate=np.array([rate]), scheduler="chunked")
        ttft, tpot = simulate_chunked(tables, gen, rate, n=2000)
        assert s.ttft_ms[0] == pytest.approx(ttft, rel=0.10), (fraction, s.ttft_ms[0], ttft)
        assert s.tpot_ms[0] == pytest.approx(tpot, rel=0.10), (fraction, s.tpot_ms[0], tpot)
        assert not s.saturated[0]
        assert s.concurrency[0] == pytest.approx(rate * (gen - 1) * s.tpot_ms[0] / 1e3, rel=0.02)


def test_a_chunked_iteration_is_the_compiled_step_by_hand():
    """No prompt tokens: a decode step; no decodes: a prefill; both: the weights read once."""
    c = lr.compile("llama-3.1-8b", "h100")
    tables = step_tables(c, 512, 64)
    assert tables.token_budget == 8192 and step_tables(lr.compile("llama-3.1-8b", "4090"), 512, 64).token_budget == 2048
    from llm_roofline.timing import mixed_step_s

    ds, eff, bw = c.device, c.efficiency, c.hw.bandwidth_gbps
    t = c.times(8, 512, 700, 1)
    assert mixed_step_s(ds, eff, 8, 700, 0, 0, 0, bw)[0] == pytest.approx(
        float(c.times(8, 1, 700, 1e-6).decode.estimate_s[0]), rel=1e-6)
    assert mixed_step_s(ds, eff, 0, 0, 1, 512, 0, bw)[0] == pytest.approx(
        float(c.times(1, 512, 512, 1).prefill.estimate_s[0]), rel=1e-12)
    both = mixed_step_s(ds, eff, 8, 700, 1, 512, 0, bw)[0]
    assert both < float(t.decode.estimate_s[0]) + float(c.times(1, 512, 512, 1).prefill.estimate_s[0])
    assert both > float(c.times(1, 512, 512, 1).prefill.estimate_s[0])


def test_more_load_never_serves_faster():
    tables = step_tables(lr.compile("llama-3.1-8b", "h100"), 512, 64)
    s = steady_state(tables, 64, rate=np.geomspace(0.5, 60, 30))
    assert np.all(np.diff(s.tpot_ms) >= -1e-9) and np.all(np.diff(s.ttft_ms) >= -1e-9)


@pytest.mark.parametrize("users", [1, 4, 16])
def test_fixed_concurrency_cohort_matches_the_simulation(users):
    tables = step_tables(lr.compile("llama-3.1-8b", "h100"), 512, 64)
    s = steady_state(tables, 64, users=np.array([users]))
    ttft, tpot = simulate(tables, 64, users=users, n=400)
    assert s.ttft_ms[0] == pytest.approx(ttft, rel=1e-6) and s.tpot_ms[0] == pytest.approx(tpot, rel=1e-6)


def test_one_user_is_predict():
    c = lr.compile("llama-3.1-8b", "4090", weights="q4_k_m", engine="llama.cpp-cuda")
    s = steady_state(step_tables(c, 1024, 200), 200, users=np.array([1]))
    p = lr.predict("llama-3.1-8b", "4090", weights="q4_k_m", engine="llama.cpp-cuda", prompt=1024, gen=200)
    assert s.ttft_ms[0] == pytest.approx(p.prefill.ttft_ms, rel=1e-9)
    assert s.tpot_ms[0] == pytest.approx(p.decode.tpot_ms, rel=1e-9)


def test_a_full_kv_cache_saturates():
    tables = step_tables(lr.compile("llama-3.1-8b", "4090"), 1024, 128)
    assert steady_state(tables, 128, users=np.array([tables.max_concurrency + 1])).saturated[0]
    assert steady_state(tables, 128, rate=np.array([1000.0])).saturated[0]
