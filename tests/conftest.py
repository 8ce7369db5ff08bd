import json
import os

import pytest
from hypothesis import settings

# CI: 40 examples per property. Before a release: HYPOTHESIS_PROFILE=nightly python -m pytest tests/test_roofline.py
# (10,000 examples per property; docs/method.md records the last run). HYPOTHESIS_MAX_EXAMPLES sets any other count.
settings.register_profile("ci", max_examples=int(os.environ.get("HYPOTHESIS_MAX_EXAMPLES", 40)), deadline=None)
settings.register_profile("nightly", max_examples=10_000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# A tiny Llama-style decoder whose bytes and FLOPs are worked out by hand in test_ops.py.
TINY = {
    "model_type": "llama",
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "intermediate_size": 128,
    "vocab_size": 100,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "max_position_embeddings": 4096,
}


@pytest.fixture
def tiny_config(tmp_path):
    path = tmp_path / "tiny" / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps(TINY))
    return path


@pytest.fixture
def point_rows():
    """(ceiling s, estimate s) of each operator row of one step (B sequences, T new tokens, D cached), through the
    same compiled step and timing as predict; no fixed overhead."""
    from dataclasses import replace

    from llm_roofline.step import CompiledStep
    from llm_roofline.timing import DeviceStep, prefill_times

    def rows(spec, fmt, kv_bits, hw, eff, batch=1, tokens=1, depth=0, tp=1):
        ds = DeviceStep(CompiledStep(spec, fmt, kv_bits, tp), hw)
        eff = replace(eff, step_overhead_us=0.0, prefill_overhead_us=0.0)
        t = prefill_times(ds, eff, batch, tokens, depth, hw.bandwidth_gbps, rows=True)
        return {name: (float(t.rows["ceiling_s"][i, 0]), float(t.rows["estimate_s"][i, 0]))
                for i, name in enumerate(ds.step.rows)}

    return rows
