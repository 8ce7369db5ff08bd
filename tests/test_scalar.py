"""The plain-float evaluation of one workload (scalar.py) against the vectorised path it stands in for: the same
prediction, every figure and operator row, to 1e-9, over the features a step can have."""

import copy
import math

import numpy as np
import pytest
import transformers

import llm_roofline as lr
from llm_roofline.architecture import spec_from_config
from llm_roofline.compiled import compile

CASES = [  # model, device, options: windows, MoE, MLA, linear attention, Mamba, tensor parallel, engines, skew
    ("llama-3.1-8b", "h100", {}),
    ("llama-2-7b", "a100", {"weights": "int8", "kv_cache": "fp8"}),
    ("gemma-3-27b", "m2-ultra", {"weights": "q4_k_m", "engine": "llama.cpp-metal"}),
    ("gemma-2-9b", "rtx-4090", {"weights": "q8_0", "engine": "llama.cpp-cuda", "step_overhead_us": 40.0}),
    ("qwen3-30b-a3b", "4090", {"weights": "q4_k_m", "engine": "llama.cpp-cuda"}),
    ("qwen3-30b-a3b", "h100", {"routing_skew": 1.2, "compute_efficiency": 0.5}),
    ("deepseek-v3", "h200", {"weights": "fp8", "tp": 8, "engine": "vllm"}),
    ("qwen3.5-27b", "h100", {"tp": 2}),
    ("gpt-oss-20b", "a100", {"weights": "mxfp4"}),
    ("llama-3.1-70b", "h100", {"weights": "fp8", "tp": 4, "engine": "tensorrt-llm"}),
    ("qwen2.5-7b", "amd-epyc-9654", {"weights": "q4_0"}),
    ("opt-6.7b", "mi300x", {"engine": "vllm"}),
    ("qwen3-30b-a3b", "h100", {"tp": 2, "ep": 8, "engine": "vllm"}),
    ("deepseek-v3", "h200", {"weights": "fp8", "tp": 8, "ep": 16}),
]


def _close(got, want, path=""):
    """Equal structures, numbers to a relative 1e-9."""
    if isinstance(want, dict):
        assert got.keys() == want.keys(), path
        for k in want:
            _close(got[k], want[k], f"{path}.{k}")
    elif isinstance(want, (list, tuple)):
        assert len(got) == len(want), path
        for i, (g, w) in enumerate(zip(got, want)):
            _close(g, w, f"{path}[{i}]")
    elif isinstance(want, float) and not isinstance(want, bool):
        assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-300), (path, got, want)
    else:
        assert got == want, (path, got, want)


def _vectorised(c):
    out = copy.copy(c)
    out.scalar = None
    return out


def _workloads(seed, n=8):
    rng = np.random.default_rng(seed)
    fixed = [(1, 1, 0, 1), (1, 512, None, 256), (64, 2048, 4096, 1)]
    drawn = [(int(rng.integers(1, 300)), int(rng.integers(1, 9000)), int(rng.integers(0, 40000)),
              int(rng.integers(1, 5000))) for _ in range(n)]
    return fixed + drawn


@pytest.mark.parametrize("model,device,options", CASES)
def test_one_workload_in_floats_equals_the_vectorised_path(model, device, options):
    c = compile(model, device, **options)
    assert c.scalar is not None
    v = _vectorised(c)
    for batch, prompt, context, gen in _workloads(len(model) + len(device)):
        want = v.predict(batch, prompt, context, gen).to_dict()
        got = c.predict(batch, prompt, context, gen).to_dict()
        _close(got, want)


@pytest.mark.parametrize("model_type", ["mamba2", "deepseek_v32", "falcon_h1", "cohere2"])
def test_new_architectures_in_floats_equal_the_vectorised_path(model_type):
    spec = spec_from_config(transformers.AutoConfig.for_model(model_type).to_dict(), model_type)
    c = compile(spec, "h100", weights="bf16", tp=1)
    v = _vectorised(c)
    for batch, prompt, context, gen in _workloads(3, n=4):
        _close(c.predict(batch, prompt, context, gen).to_dict(), v.predict(batch, prompt, context, gen).to_dict())


def test_the_vectorised_path_stays_where_floats_do_not_reach():
    """A layer split and a measured profile (matmul curves, bandwidth by working set) keep the numpy path."""
    assert compile("llama-3.1-70b", "3090", weights="q4_k_m", pp=2).scalar is None
    p = lr.predict("llama-3.1-70b", "3090", weights="q4_k_m", pp=2, engine="llama.cpp-cuda")
    assert p.decode.ceiling_tok_s >= p.decode.estimate_tok_s


def test_an_assumed_peak_bounds_nothing_in_floats_too():
    from llm_roofline.validate import row_hardware
    from tests.test_validate import _row

    hw = row_hardware(_row("NVIDIA Jetson AGX Thor"))
    c = compile("llama-3.1-8b", hw, weights="q4_k_m")
    assert c.scalar is not None
    _close(c.predict(1, 512, None, 128).to_dict(), _vectorised(c).predict(1, 512, None, 128).to_dict())
    p = c.predict(1, 512, None, 128)
    assert p.prefill.ttft_floor_ms == pytest.approx(p.prefill.bytes / 273.0e9 * 1e3, rel=1e-9)


def test_the_mean_of_a_maximum_in_floats_equals_numpy_including_crossings():
    from llm_roofline.scalar import _mean_of_max
    from llm_roofline.timing import mean_of_max

    rng = np.random.default_rng(11)
    pa, qa, pb, qb = rng.uniform(0, 1, (4, 2000))
    pa[:5], qa[:5], pb[:5], qb[:5] = [0, 1, 1, 0.5, 0], [0, 1, 0, 0.5, 0], [0, 1, 2, 0.5, 0], [0, 0, 3, 0.7, 0]
    want_m, want_b = mean_of_max(pa, qa, pb, qb)
    crossings = ((pa > qa) != (pb > qb)).sum()
    assert crossings > 500  # both directions of crossing are exercised
    for i in range(pa.size):
        m, b = _mean_of_max(pa[i], qa[i], pb[i], qb[i])
        assert m == pytest.approx(want_m[i], rel=1e-12, abs=1e-15) and b == pytest.approx(want_b[i], rel=1e-12, abs=1e-15)
    # by hand: P from 0 to 2, Q at 1 throughout: max is 1 for the first half, P (mean 1.5) for the second
    assert _mean_of_max(0.0, 1.0, 2.0, 1.0) == pytest.approx((1.25, 0.75))
