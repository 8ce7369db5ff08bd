"""A .safetensors checkpoint as MODEL: real files written with the safetensors package; the oracle for bytes is
the file itself (its size less the header safetensors writes in front of the data)."""

import json
import struct

import numpy as np
import pytest

pytest.importorskip("safetensors")
from safetensors.numpy import save_file  # noqa: E402

import llm_roofline as lr  # noqa: E402
from llm_roofline.architecture import load_model, param_counts  # noqa: E402

H, FF, L, HEADS, KV, VOCAB = 256, 512, 2, 4, 2, 1024
CONFIG = {"model_type": "llama", "hidden_size": H, "intermediate_size": FF, "num_hidden_layers": L,
          "num_attention_heads": HEADS, "num_key_value_heads": KV, "vocab_size": VOCAB, "torch_dtype": "float16",
          "tie_word_embeddings": False, "max_position_embeddings": 4096}


def data_bytes(path):
    """Bytes of tensor data: the file less its 8-byte length and JSON header."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return len(raw) - 8 - n


def linear_shapes():
    d = H // HEADS
    return {"self_attn.q_proj": (HEADS * d, H), "self_attn.k_proj": (KV * d, H), "self_attn.v_proj": (KV * d, H),
            "self_attn.o_proj": (H, HEADS * d), "mlp.gate_proj": (FF, H), "mlp.up_proj": (FF, H),
            "mlp.down_proj": (H, FF)}


def write(tmp_path, gptq=False):
    rng = np.random.default_rng(0)
    t = {"model.embed_tokens.weight": rng.standard_normal((VOCAB, H)).astype(np.float16),
         "lm_head.weight": rng.standard_normal((VOCAB, H)).astype(np.float16),
         "model.norm.weight": np.ones(H, np.float16)}
    for i in range(L):
        p = f"model.layers.{i}"
        t[f"{p}.input_layernorm.weight"] = np.ones(H, np.float16)
        t[f"{p}.post_attention_layernorm.weight"] = np.ones(H, np.float16)
        for name, (out, inp) in linear_shapes().items():
            if gptq:  # 4-bit weights packed 8 to an int32, an fp16 scale and a packed zero per 128 inputs
                t[f"{p}.{name}.qweight"] = rng.integers(0, 2**31, (inp // 8, out)).astype(np.int32)
                t[f"{p}.{name}.scales"] = rng.standard_normal((inp // 128, out)).astype(np.float16)
                t[f"{p}.{name}.qzeros"] = rng.integers(0, 2**31, (inp // 128, out // 8)).astype(np.int32)
            else:
                t[f"{p}.{name}.weight"] = rng.standard_normal((out, inp)).astype(np.float16)
    config = dict(CONFIG)
    if gptq:
        config["quantization_config"] = {"quant_method": "gptq", "bits": 4, "group_size": 128}
    (tmp_path / "config.json").write_text(json.dumps(config))
    path = tmp_path / "model.safetensors"
    save_file(t, str(path))
    return path


def test_fp16_checkpoint_bytes_are_the_files(tmp_path):
    path = write(tmp_path)
    spec = load_model(path)
    elements = VOCAB * H * 2 + H + L * (2 * H + sum(o * i for o, i in linear_shapes().values()))
    assert param_counts(spec).total == elements
    p = lr.predict(path, "h100")
    assert p.model.weight_bytes == pytest.approx(data_bytes(path), rel=1e-9)


def test_gptq_checkpoint_counts_what_it_stores(tmp_path):
    path = write(tmp_path, gptq=True)
    p = lr.predict(path, "4090")
    assert p.model.weight_bytes == pytest.approx(data_bytes(path), rel=1e-9)
    assert p.model.weight_bytes < 0.5 * VOCAB * H * 2 * 2 + L * 2e6  # far below an fp16 count
    assert p.workload.weights.startswith("int4-gptq")


def test_a_safetensors_file_without_its_config_is_refused(tmp_path):
    path = write(tmp_path)
    (tmp_path / "config.json").unlink()
    with pytest.raises(lr.UserError, match="config.json"):
        load_model(path)
    (tmp_path / "config.json").write_text(json.dumps({**CONFIG, "num_hidden_layers": 3}))
    with pytest.raises(lr.UserError, match="not modelled"):
        load_model(path)
