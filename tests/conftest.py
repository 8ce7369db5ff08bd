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
