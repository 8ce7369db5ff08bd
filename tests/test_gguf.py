"""GGUF files as MODEL: real files written with the gguf package (random weights, real ggml tensor types), read
back; the oracle for parameters and bytes is what gguf's own reader reports for the file's tensors."""

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")

import llm_roofline as lr  # noqa: E402
from llm_roofline.architecture import load_model, param_counts  # noqa: E402

Q = gguf.GGMLQuantizationType
H, FF, LAYERS, HEADS, KV, HEAD_DIM, VOCAB = 256, 512, 2, 4, 2, 64, 512


def _tensor(w, name, shape, qtype, rng):
    data = rng.standard_normal(shape).astype(np.float32)
    if qtype == Q.F32:
        w.add_tensor(name, data)
    elif qtype == Q.F16:
        w.add_tensor(name, data.astype(np.float16))
    elif qtype in (Q.Q8_0, Q.Q4_0):
        w.add_tensor(name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)
    else:  # k-quants: gguf writes but does not quantise them; random blocks of the right size
        block, size = gguf.GGML_QUANT_SIZES[qtype]
        raw = rng.integers(0, 256, (*shape[:-1], shape[-1] // block * size), dtype=np.uint8)
        w.add_tensor(name, raw, raw_dtype=qtype)


def write_llama(path, linear=Q.Q8_0, embd=Q.Q8_0, out=Q.Q6_K, file_type=gguf.LlamaFileType.MOSTLY_Q8_0, moe=0):
    rng = np.random.default_rng(0)
    arch = "qwen3moe" if moe else "llama"
    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(LAYERS)
    w.add_embedding_length(H)
    w.add_feed_forward_length(FF)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV)
    w.add_context_length(4096)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(file_type)
    w.add_token_list([f"t{i}" for i in range(VOCAB)])
    if moe:
        w.add_key_length(HEAD_DIM)
        w.add_value_length(HEAD_DIM)
        w.add_expert_count(moe)
        w.add_expert_used_count(2)
        w.add_expert_feed_forward_length(FF // 2)
    _tensor(w, "token_embd.weight", (VOCAB, H), embd, rng)
    _tensor(w, "output.weight", (VOCAB, H), out, rng)
    _tensor(w, "output_norm.weight", (H,), Q.F32, rng)
    for i in range(LAYERS):
        b = f"blk.{i}"
        _tensor(w, f"{b}.attn_norm.weight", (H,), Q.F32, rng)
        _tensor(w, f"{b}.ffn_norm.weight", (H,), Q.F32, rng)
        _tensor(w, f"{b}.attn_q.weight", (HEADS * HEAD_DIM, H), linear, rng)
        _tensor(w, f"{b}.attn_k.weight", (KV * HEAD_DIM, H), linear, rng)
        _tensor(w, f"{b}.attn_v.weight", (KV * HEAD_DIM, H), linear, rng)
        _tensor(w, f"{b}.attn_output.weight", (H, HEADS * HEAD_DIM), linear, rng)
        if moe:
            _tensor(w, f"{b}.attn_q_norm.weight", (HEAD_DIM,), Q.F32, rng)
            _tensor(w, f"{b}.attn_k_norm.weight", (HEAD_DIM,), Q.F32, rng)
            _tensor(w, f"{b}.ffn_gate_inp.weight", (moe, H), Q.F32, rng)
            for n, shape in (("gate", (moe, FF // 2, H)), ("up", (moe, FF // 2, H)), ("down", (moe, H, FF // 2))):
                _tensor(w, f"{b}.ffn_{n}_exps.weight", shape, Q.Q4_0, rng)
        else:
            for n, shape in (("gate", (FF, H)), ("up", (FF, H)), ("down", (H, FF))):
                _tensor(w, f"{b}.ffn_{n}.weight", shape, linear, rng)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def oracle(path):
    r = gguf.GGUFReader(str(path))
    return sum(int(t.n_elements) for t in r.tensors), sum(int(t.n_bytes) for t in r.tensors)


@pytest.mark.parametrize("linear,file_type", [(Q.Q8_0, gguf.LlamaFileType.MOSTLY_Q8_0),
                                               (Q.Q4_K, gguf.LlamaFileType.MOSTLY_Q4_K_M),
                                               (Q.F16, gguf.LlamaFileType.MOSTLY_F16)])
def test_dense_gguf_parameters_and_bytes_are_the_files(tmp_path, linear, file_type):
    path = write_llama(tmp_path / "tiny.gguf", linear=linear, file_type=file_type)
    elements, nbytes = oracle(path)
    spec = load_model(path)
    assert spec.model_type == "llama" and spec.n_layers == LAYERS and not spec.tie_embeddings
    assert param_counts(spec).total == elements
    p = lr.predict(path, "h100")
    assert p.model.weight_bytes == pytest.approx(nbytes, rel=1e-9)
    assert p.workload.weights.startswith("gguf-")
    # decode at batch 1 reads every layer weight, the output matrix and one embedding row
    embd_row = [t for t in gguf.GGUFReader(str(path)).tensors if t.name == "token_embd.weight"][0]
    embd_bytes = int(embd_row.n_bytes)
    assert p.decode.weight_bytes_per_step == pytest.approx(nbytes - embd_bytes + embd_bytes / VOCAB, rel=1e-9)


def test_moe_gguf_counts_experts_in_their_own_type(tmp_path):
    path = write_llama(tmp_path / "moe.gguf", moe=8, file_type=gguf.LlamaFileType.MOSTLY_Q4_0)
    elements, nbytes = oracle(path)
    spec = load_model(path)
    assert spec.moe is not None and spec.moe.n_experts == 8 and spec.moe.top_k == 2
    assert param_counts(spec).total == elements
    p = lr.predict(path, "4090")
    assert p.model.weight_bytes == pytest.approx(nbytes, rel=1e-9)


def test_split_gguf_needs_every_part(tmp_path):
    path = write_llama(tmp_path / "m-00001-of-00002.gguf")
    with pytest.raises(lr.UserError, match="missing"):
        load_model(path)


def test_unsupported_or_broken_gguf_is_refused(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 20)
    with pytest.raises(lr.UserError, match="GGUF"):
        load_model(bad)
    w = gguf.GGUFWriter(str(tmp_path / "rwkv.gguf"), "rwkv6")
    w.add_block_count(1)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(lr.UserError, match="not supported yet"):
        load_model(tmp_path / "rwkv.gguf")


def test_gpt_oss_gguf_with_mxfp4_experts(tmp_path):
    """A gpt-oss GGUF as llama.cpp writes one: MXFP4 experts with biases, Q8_0 attention with biases and sinks,
    a router with a bias, every other layer sliding over 128 tokens."""
    rng = np.random.default_rng(0)
    e, i_e = 4, 256
    w = gguf.GGUFWriter(str(tmp_path / "oss.gguf"), "gpt-oss")
    w.add_block_count(LAYERS)
    w.add_embedding_length(H)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV)
    w.add_key_length(HEAD_DIM)
    w.add_value_length(HEAD_DIM)
    w.add_context_length(4096)
    w.add_expert_count(e)
    w.add_expert_used_count(2)
    w.add_expert_feed_forward_length(i_e)
    w.add_sliding_window(128)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_MXFP4_MOE)
    w.add_token_list([f"t{i}" for i in range(VOCAB)])
    _tensor(w, "token_embd.weight", (VOCAB, H), Q.Q8_0, rng)
    _tensor(w, "output.weight", (VOCAB, H), Q.Q8_0, rng)
    _tensor(w, "output_norm.weight", (H,), Q.F32, rng)
    for layer in range(LAYERS):
        b = f"blk.{layer}"
        for name in ("attn_norm", "post_attention_norm"):
            _tensor(w, f"{b}.{name}.weight", (H,), Q.F32, rng)
        for name, out in (("attn_q", HEADS * HEAD_DIM), ("attn_k", KV * HEAD_DIM), ("attn_v", KV * HEAD_DIM)):
            _tensor(w, f"{b}.{name}.weight", (out, H), Q.Q8_0, rng)
            _tensor(w, f"{b}.{name}.bias", (out,), Q.F32, rng)
        _tensor(w, f"{b}.attn_output.weight", (H, HEADS * HEAD_DIM), Q.Q8_0, rng)
        _tensor(w, f"{b}.attn_output.bias", (H,), Q.F32, rng)
        _tensor(w, f"{b}.attn_sinks.weight", (HEADS,), Q.F32, rng)
        _tensor(w, f"{b}.ffn_gate_inp.weight", (e, H), Q.F32, rng)
        _tensor(w, f"{b}.ffn_gate_inp.bias", (e,), Q.F32, rng)
        for name, shape in (("gate", (e, i_e, H)), ("up", (e, i_e, H)), ("down", (e, H, i_e))):
            _tensor(w, f"{b}.ffn_{name}_exps.weight", shape, Q.MXFP4, rng)
            _tensor(w, f"{b}.ffn_{name}_exps.bias", shape[:2], Q.F32, rng)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    path = tmp_path / "oss.gguf"
    elements, nbytes = oracle(path)
    spec = load_model(path)
    assert spec.model_type == "gpt_oss" and spec.attention_sinks and spec.moe.n_experts == e
    assert [layer.window for layer in spec.layers] == [128, None]
    assert param_counts(spec).total == elements
    assert lr.predict(path, "h100").model.weight_bytes == pytest.approx(nbytes, rel=1e-9)
