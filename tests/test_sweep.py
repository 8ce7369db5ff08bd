"""sweep() against scalar predict(), and the compiled step's exact decode average against brute force."""

import numpy as np
import pytest

import llm_roofline as lr
from llm_roofline.compiled import compile

CASES = [  # model, device, options: windows, MoE, MLA, linear attention, tensor and pipeline parallel, engines
    ("llama-3.1-8b", "h100", {}),
    ("gemma-3-27b", "m2-ultra", {"weights": "q4_k_m", "engine": "llama.cpp-metal"}),
    ("qwen3-30b-a3b", "4090", {"weights": "q4_k_m", "engine": "llama.cpp-cuda"}),
    ("deepseek-v3", "h200", {"weights": "fp8", "tp": 8, "engine": "vllm"}),
    ("qwen3.5-27b", "h100", {"tp": 2}),
    ("llama-3.1-70b", "3090", {"weights": "q4_k_m", "pp": 2, "engine": "llama.cpp-cuda"}),
    ("gpt-oss-20b", "a100", {"weights": "mxfp4", "pp": 3}),
    ("qwen3-30b-a3b", "h100", {"tp": 2, "ep": 8, "engine": "vllm"}),
    ("deepseek-v3", "h200", {"weights": "fp8", "tp": 8, "ep": 16, "pp": 2}),
]


@pytest.mark.parametrize("model,device,options", CASES)
def test_sweep_equals_predict_at_random_points(model, device, options):
    rng = np.random.default_rng(20261202)
    n = 12
    batch = rng.integers(1, 300, n)
    prompt = rng.integers(1, 9000, n)
    context = rng.integers(0, 40000, n)
    gen = rng.integers(1, 5000, n)
    s = lr.sweep(model, device, batch=batch, prompt=prompt, context=context, gen=gen, **options)
    for i in range(n):
        p = lr.predict(model, device, batch=int(batch[i]), prompt=int(prompt[i]), context=int(context[i]),
                       gen=int(gen[i]), **options)
        for got, want in ((s.ceiling_tok_s[i], p.decode.ceiling_tok_s), (s.estimate_tok_s[i], p.decode.estimate_tok_s),
                          (s.throughput_tok_s[i], p.decode.estimate_throughput_tok_s),
                          (s.tpot_ms[i], p.decode.tpot_ms), (s.tpot_floor_ms[i], p.decode.tpot_floor_ms),
                          (s.ttft_ms[i], p.prefill.ttft_ms), (s.ttft_floor_ms[i], p.prefill.ttft_floor_ms),
                          (s.memory_gb[i], p.memory.total_gb)):
            assert got == pytest.approx(want, rel=1e-9)
        assert bool(s.fits[i]) == p.memory.fits


def test_sweep_broadcasts_and_defaults_the_context_to_the_prompt():
    s = lr.sweep("llama-3.1-8b", "h100", batch=np.arange(1, 9)[:, None], prompt=[128, 4096])
    assert s.estimate_tok_s.shape == (8, 2)
    assert np.array_equal(s.context, s.prompt)
    p = lr.predict("llama-3.1-8b", "h100", batch=5, prompt=4096)
    assert s.tpot_ms[4, 1] == pytest.approx(p.decode.tpot_ms, rel=1e-9)
    assert len(s.records()) == 16 and s.records()[0]["batch"] == 1


def test_sweep_refuses_arrays_that_do_not_broadcast():
    with pytest.raises(lr.UserError, match="broadcast"):
        lr.sweep("llama-3.1-8b", "h100", batch=[1, 8, 64], context=[1000, 100000])


@pytest.mark.parametrize("bad", [[], [0], [1.5], [float("nan")], ["x"], [2**31]])
def test_sweep_refuses_bad_arrays_in_one_line(bad):
    with pytest.raises(lr.UserError) as err:
        lr.sweep("llama-3.1-8b", "h100", batch=bad)
    assert "\n" not in str(err.value) and "batch" in str(err.value)


def _brute_force_mean_step(compiled, batch, depth, gen):
    """The mean over the gen decode steps, one step at a time (depths depth .. depth + gen - 1 each stepping to the
    next): the exact integral the compiled run averages, approximated by the midpoint rule on 4,000 samples."""
    from llm_roofline.timing import prefill_times

    samples = 4000
    depths = depth + (np.arange(samples) + 0.5) * gen / samples
    ds, eff = compiled.device, compiled.efficiency
    bw = compiled.hw.bandwidth_gbps
    # one-token steps at each depth: prefill_times evaluates a single point (T = 1), minus its overhead
    from dataclasses import replace

    flat = replace(eff, prefill_overhead_us=0.0, step_overhead_us=0.0)
    t = prefill_times(ds, flat, batch, 1, depths, bw)
    return t.ceiling_s.mean(), t.estimate_s.mean() + eff.step_overhead_us * 1e-6


@pytest.mark.parametrize("model,batch,depth,gen", [("gemma-3-27b", 64, 500, 3000),  # crosses the 1,024 window
                                                   ("llama-3.1-8b", 512, 100, 20000),  # compute-bound, then not
                                                   ("qwen3-30b-a3b", 32, 0, 777)])
def test_the_exact_decode_average_matches_step_by_step(model, batch, depth, gen):
    """Between kinks the two sides of every group are affine in the depth, so the compiled run's mean of their
    maximum is exact: stepping through the run reproduces it (to the midpoint rule's error). At whole depths
    a one-token prefill is the same step as a decode step (keys min(D + 1, w), cache min(D, w) + 1)."""
    c = compile(model, "4090")
    t = c.times(batch, 1, depth, gen)
    ceiling, estimate = _brute_force_mean_step(c, batch, depth, gen)
    assert t.decode.ceiling_s[0] == pytest.approx(ceiling, rel=1e-5)
    assert t.decode.estimate_s[0] == pytest.approx(estimate, rel=1e-5)


@pytest.mark.parametrize("model,device,options", CASES)
def test_factored_grid_equals_every_workload_evaluated(model, device, options):
    """A grid (batch x context x gen x prompt on separate axes) and random pairs, through the factored path,
    against every workload evaluated in full by Compiled.times."""
    from llm_roofline.factored import factor, times

    c = compile(model, device, **options)
    parts = factor(c)
    if options.get("pp", 1) > 1 or options.get("ep", 1) > options.get("tp", 1):
        assert parts is None  # a pipeline's ceiling micro-batches, replicas' attention follows ceil(B / dp)
        return
    assert parts is not None
    rng = np.random.default_rng(7)
    grids = [(np.array([1, 3, 64, 257])[:, None, None, None], np.array([1, 700, 4096])[None, :, None, None],
              np.array([0, 1023, 5000])[None, None, :, None], np.array([1, 31, 900])[None, None, None, :]),
             tuple(rng.integers(lo, hi, 50) for lo, hi in ((1, 300), (1, 9000), (0, 40000), (1, 5000)))]
    for batch, prompt, depth, gen in grids:
        got = times(c, parts, batch, prompt, depth, gen)
        full = c.times(*np.broadcast_arrays(batch, prompt, depth, gen))
        want = {"decode_ceiling_s": full.decode_ceiling_s, "decode_estimate_s": full.decode.estimate_s,
                "prefill_ceiling_s": full.prefill.ceiling_s, "prefill_estimate_s": full.prefill.estimate_s}
        for key in want:
            np.testing.assert_allclose(got[key], want[key], rtol=1e-9, err_msg=key)



def test_long_sweeps_and_plans_report_progress():
    from llm_roofline.plan import plan
    from llm_roofline.sweeps import sweep_configs

    calls = []
    out = sweep_configs("llama-3.1-8b", ["h100", "4090"], weights=["bf16", "q4_k_m"], tp=[1, 2], batch=[1, 8],
                        progress=lambda done, total, label: calls.append((done, total, label)))
    assert len(out) == 8 and [c[0] for c in calls] == list(range(1, 17)) and {c[1] for c in calls} == {16}
    seen = []
    plan("llama-3.1-8b", ["h100", "a100"], weights=["bf16"], rate=1.0, max_devices=2,
         progress=lambda done, total, label: seen.append((done, total)))
    assert seen == [(0, 2), (1, 2)]
