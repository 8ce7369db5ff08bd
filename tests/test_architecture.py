"""Config reading and parameter counts against publishers' figures (models/INDEX.md)."""

import json

import pytest

from llm_roofline import catalog
from llm_roofline.architecture import load_model, param_counts, spec_from_config
from llm_roofline.errors import UserError

from conftest import TINY

# (catalog id, official count in billions, which count, tolerance, why). Figures are the publishers' (model card,
# paper, hub badge) as listed in shared/data/models/INDEX.md; the tolerance is 1% unless a reason is given.
B = 1e9
OFFICIAL = [
    ("llama-2-7b", 6.74, "total", 0.01, "hub"),
    ("llama-2-13b", 13.0, "total", 0.01, "hub"),
    ("llama-2-70b", 69.0, "total", 0.01, "hub"),
    ("llama-3-8b", 8.03, "total", 0.01, "hub"),
    ("llama-3-70b", 70.6, "total", 0.01, "hub"),
    ("llama-3.1-8b", 8.03, "total", 0.01, "hub"),
    ("llama-3.1-70b", 70.6, "total", 0.01, "hub"),
    ("llama-3.1-405b", 406, "total", 0.01, "hub"),
    ("llama-3.2-1b", 1.23, "total", 0.01, "card"),
    ("llama-3.2-3b", 3.21, "total", 0.01, "card"),
    ("llama-3.3-70b", 70.6, "total", 0.01, "hub"),
    ("mistral-7b-v0.1", 7.24, "total", 0.01, "hub"),
    ("mistral-7b-v0.3", 7.25, "total", 0.01, "hub"),
    ("mixtral-8x7b", 46.7, "total", 0.01, "Mistral"),
    ("mixtral-8x7b", 12.9, "active", 0.01, "Mistral"),
    ("mixtral-8x22b", 141, "total", 0.01, "Mistral"),
    ("mixtral-8x22b", 39, "active", 0.015, "Mistral rounds 39.15 to 39"),
    ("qwen2.5-0.5b", 0.49, "total", 0.015, "card gives 2 digits (0.494)"),
    ("qwen2.5-0.5b", 0.36, "non_embedding", 0.01, "card"),
    ("qwen2.5-1.5b", 1.54, "total", 0.01, "card"),
    ("qwen2.5-1.5b", 1.31, "non_embedding", 0.01, "card"),
    ("qwen2.5-3b", 3.09, "total", 0.01, "card"),
    ("qwen2.5-3b", 2.77, "non_embedding", 0.01, "card"),
    ("qwen2.5-7b", 7.61, "total", 0.01, "card"),
    ("qwen2.5-7b", 6.53, "non_embedding", 0.01, "card"),
    ("qwen2.5-14b", 14.7, "total", 0.01, "card"),
    ("qwen2.5-14b", 13.1, "non_embedding", 0.01, "card"),
    # The card says 32.5B, the config gives 32.76B; the hub badge (32.8B) agrees with the config (INDEX.md).
    ("qwen2.5-32b", 32.8, "total", 0.01, "hub badge; card's 32.5 is a documented exception"),
    ("qwen2.5-32b", 31.0, "non_embedding", 0.01, "card"),
    ("qwen2.5-72b", 72.7, "total", 0.01, "card"),
    ("qwen2.5-72b", 70.0, "non_embedding", 0.01, "card"),
    ("qwen3-0.6b", 0.6, "total", 0.01, "card"),
    ("qwen3-0.6b", 0.44, "non_embedding", 0.01, "card"),
    ("qwen3-1.7b", 1.7, "total", 0.015, "card rounds 1.72"),
    ("qwen3-1.7b", 1.4, "non_embedding", 0.01, "card"),
    ("qwen3-4b", 4.0, "total", 0.01, "card"),
    ("qwen3-4b", 3.6, "non_embedding", 0.01, "card"),
    ("qwen3-8b", 8.2, "total", 0.01, "card"),
    ("qwen3-8b", 6.95, "non_embedding", 0.01, "card"),
    ("qwen3-14b", 14.8, "total", 0.01, "card"),
    ("qwen3-14b", 13.2, "non_embedding", 0.01, "card"),
    ("qwen3-32b", 32.8, "total", 0.01, "card"),
    ("qwen3-32b", 31.2, "non_embedding", 0.01, "card"),
    ("qwen3-30b-a3b", 30.5, "total", 0.01, "card"),
    ("qwen3-30b-a3b", 3.3, "active", 0.02, "card rounds 3.35 to one decimal"),
    ("qwen3-235b-a22b", 235, "total", 0.01, "card"),
    ("qwen3-235b-a22b", 22, "active", 0.01, "card"),
    ("deepseek-v2-lite", 15.7, "total", 0.01, "card"),
    ("deepseek-v2-lite", 2.4, "active_non_embedding", 0.025, "card: active without embeddings, one decimal"),
    # 671B excludes the 14B multi-token-prediction module that the hub's 685B includes (not modelled here).
    ("deepseek-v3", 671, "total", 0.01, "paper"),
    ("deepseek-v3", 37, "active", 0.015, "paper rounds to the billion"),
    ("gemma-2-2b", 2.61, "total", 0.01, "hub"),
    ("gemma-2-9b", 9.24, "total", 0.01, "hub"),
    ("gemma-2-27b", 27.2, "total", 0.01, "hub"),
    ("gemma-3-1b", 1.0, "total", 0.01, "hub"),
    # Gemma 3 4B/12B/27B hub figures include the ~0.42B SigLIP vision tower, which is not modelled.
    ("gemma-3-4b", 4.3 - 0.42, "total", 0.01, "hub minus vision tower"),
    ("gemma-3-12b", 12.2 - 0.42, "total", 0.01, "hub minus vision tower"),
    ("gemma-3-27b", 27.4 - 0.42, "total", 0.01, "hub minus vision tower"),
    ("phi-3-mini", 3.8, "total", 0.01, "card"),
    ("phi-4", 14.7, "total", 0.01, "hub"),
    # gpt-oss: the card's active figure excludes the embedding table.
    ("gpt-oss-20b", 21, "total", 0.01, "card"),
    ("gpt-oss-20b", 3.6, "active_non_embedding", 0.01, "card"),
    ("gpt-oss-120b", 117, "total", 0.01, "card"),
    ("gpt-oss-120b", 5.1, "active_non_embedding", 0.01, "card"),
    ("gpt2", 0.124, "total", 0.01, "OpenAI"),
    ("gpt2-medium", 0.355, "total", 0.01, "OpenAI"),
    ("gpt2-large", 0.774, "total", 0.01, "OpenAI"),
    ("gpt2-xl", 1.56, "total", 0.01, "hub"),
    ("opt-6.7b", 6.7, "total", 0.01, "paper"),
    ("opt-30b", 30, "total", 0.01, "paper"),
    ("opt-66b", 66, "total", 0.01, "paper"),
    ("falcon-7b", 6.92, "total", 0.01, "hub"),
    # "40B" is the name; the layer dimensions give 41.3B (INDEX.md computes the same). Name-size models get 5%.
    ("falcon-40b", 40, "total", 0.05, "name size only"),
    ("falcon-180b", 180, "total", 0.01, "card"),
    ("smollm2-135m", 0.135, "total", 0.01, "card"),
    ("smollm2-360m", 0.362, "total", 0.01, "card"),
    ("smollm2-1.7b", 1.71, "total", 0.01, "card"),
    ("tinyllama-1.1b", 1.1, "total", 0.01, "card"),
    ("olmo-2-7b", 7.3, "total", 0.01, "hub"),
    ("codellama-34b", 33.7, "total", 0.01, "gpt-fast / card"),
    ("gpt-j-6b", 6.05, "total", 0.01, "card"),
    # Newer rows whose INDEX.md entry repeats only the size in the name (and whose files include a vision tower).
    ("qwen3.5-27b", 27, "total", 0.05, "name size only"),
    ("gemma-4-31b", 31, "total", 0.05, "name size only"),
    ("gemma-4-26b-a4b", 26, "total", 0.05, "name size only"),
    ("gemma-4-26b-a4b", 4, "active", 0.05, "name size only"),
]


def _count(mid, which):
    c = param_counts(load_model(mid))
    return {"total": c.total, "active": c.active, "non_embedding": c.total - c.embedding - c.lm_head,
            "active_non_embedding": c.active - c.embedding}[which]


@pytest.mark.parametrize("mid,official,which,tol,why", OFFICIAL, ids=[f"{r[0]}-{r[2]}" for r in OFFICIAL])
def test_param_counts_match_publishers(mid, official, which, tol, why):
    assert _count(mid, which) == pytest.approx(official * B, rel=tol), why


def test_every_catalog_model_is_in_the_official_table():
    assert {r[0] for r in OFFICIAL} == set(catalog.model_ids())


def test_hand_counted_tiny_model(tiny_config):
    # attn q,k,v: 64 x (4*16 + 2*2*16) = 8192; o: 64*64 = 4096; MLP: 3*64*128 = 24576; norms 2*64
    per_layer = 8192 + 4096 + 24576 + 128
    c = param_counts(load_model(tiny_config))
    assert c.total == 2 * per_layer + 100 * 64 * 2 + 64
    assert c.active == c.total
    assert c.embedding == 6400 and c.lm_head == 6400


def test_tied_embedding_counted_once():
    spec = spec_from_config({**TINY, "tie_word_embeddings": True}, "t")
    assert param_counts(spec).lm_head == 0


def test_transformers_defaults_applied_to_sparse_gemma3_text_config():
    spec = load_model("gemma-3-27b")  # text_config omits vocab; Gemma3TextConfig's default is 262208
    assert spec.vocab_size == 262208 and spec.tie_embeddings
    # 5 local : 1 global, window 1024
    assert [l.window for l in spec.layers[:6]] == [1024] * 5 + [None]


def test_head_dim_explicit_and_gqa():
    spec = load_model("qwen3-8b")
    assert (spec.layers[0].n_heads, spec.layers[0].n_kv_heads, spec.layers[0].head_dim) == (32, 8, 128)
    gemma = load_model("gemma-2-9b")  # head_dim 256 although hidden/heads = 224
    assert gemma.layers[0].head_dim == 256
    assert [l.window for l in gemma.layers[:4]] == [4096, None, 4096, None]


def test_mqa_falcon_and_mla_deepseek():
    assert load_model("falcon-7b").layers[0].n_kv_heads == 1
    ds = load_model("deepseek-v3")
    assert ds.mla.kv_lora_rank == 512 and ds.mla.qk_rope_head_dim == 64
    assert [l.mlp for l in ds.layers[:4]] == ["dense", "dense", "dense", "moe"]
    assert ds.checkpoint_dtype == "fp8"


def test_gpt_oss_alternates_windows_and_has_sinks():
    spec = load_model("gpt-oss-20b")
    assert [l.window for l in spec.layers[:4]] == [128, None, 128, None]
    assert spec.attention_sinks and spec.checkpoint_dtype == "mxfp4"


def test_qwen_sliding_window_unused_when_disabled():
    assert all(l.window is None for l in load_model("qwen2.5-7b").layers)


def test_hybrid_linear_attention():
    spec = load_model("qwen3.5-27b")
    kinds = [l.attention for l in spec.layers]
    assert kinds.count("linear") == 48 and kinds.count("gqa") == 16


def test_aliases_and_paths(tiny_config):
    assert load_model("meta-llama/Llama-3.1-70B").id == "llama-3.1-70b"
    assert load_model("Llama-3.1-70B").id == "llama-3.1-70b"
    assert load_model(tiny_config.parent).id == "tiny"
    assert load_model(tiny_config).hidden_size == 64


@pytest.mark.parametrize("config,kind", [
    ({**TINY, "model_type": "brand_new"}, ""),
    ({**TINY, "model_type": "rwkv"}, ""),
    ({"model_type": "bert", "architectures": ["BertForMaskedLM"], "hidden_size": 768}, "encoder-only"),
    ({"model_type": "t5", "is_encoder_decoder": True, "d_model": 512}, "encoder-decoder"),
    ({"model_type": "clip", "vision_config": {}, "projection_dim": 512}, ""),
    ({"model_type": "vit", "hidden_size": 768}, "vision"),
])
def test_a_model_type_not_modelled_is_refused_never_guessed(config, kind):
    with pytest.raises(UserError) as err:
        spec_from_config(config, "x")
    msg = str(err.value)
    assert "not supported yet" in msg and repr(config["model_type"]) in msg and "llama" in msg and "\n" not in msg
    assert kind in msg


@pytest.mark.parametrize("drop,field", [("hidden_size", "hidden_size"), ("num_hidden_layers", "num_hidden_layers"),
                                        ("vocab_size", "vocab_size"), ("model_type", "model_type")])
def test_missing_field_is_named(drop, field):
    cfg = {k: v for k, v in TINY.items() if k != drop}
    with pytest.raises(UserError, match=field):
        spec_from_config(cfg, "x")


def test_wrong_field_type_is_named():
    with pytest.raises(UserError, match="num_attention_heads"):
        spec_from_config({**TINY, "num_attention_heads": "four"}, "x")
    with pytest.raises(UserError, match="multiple"):
        spec_from_config({**TINY, "num_key_value_heads": 3}, "x")


def test_bad_files(tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text("{not json")
    with pytest.raises(UserError, match="not a readable JSON"):
        load_model(bad)
    with pytest.raises(UserError, match="without a config.json"):
        load_model(tmp_path / ".." / tmp_path.name / "..")
    with pytest.raises(UserError, match="closest: llama-3.1-70b"):
        load_model("llama-3.1-70")
    (tmp_path / "list.json").write_text(json.dumps([1, 2]))
    with pytest.raises(UserError, match="JSON object"):
        load_model(tmp_path / "list.json")


def test_a_model_in_the_local_hub_cache_is_found(tmp_path, monkeypatch):
    import json

    snap = tmp_path / "models--acme--tiny-7b" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text(json.dumps(TINY))
    (tmp_path / "models--acme--tiny-7b" / "refs").mkdir()
    (tmp_path / "models--acme--tiny-7b" / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    spec = load_model("acme/tiny-7b")
    assert spec.hidden_size == TINY["hidden_size"] and "local Hugging Face cache" in spec.source
    with pytest.raises(UserError, match="unknown model"):
        load_model("acme/not-cached")


def test_instruct_tunes_have_their_base_architecture():
    base = load_model("meta-llama/Llama-3.1-8B")
    tuned = load_model("meta-llama/Llama-3.1-8B-Instruct")
    assert tuned.layers == base.layers and tuned.hidden_size == base.hidden_size
    assert any("the same shapes, other weights" in n for n in tuned.notes)
