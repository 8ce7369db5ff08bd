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
    return _finish(w, path)


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


def _finish(w, path):
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def write_deepseek2(path, q_lora=64, router_bias=True):
    """A DeepSeek-V3-style MLA file as llama.cpp writes it since its MLA rework (key_length the latent's width,
    key_length_mla / value_length_mla per head), one dense layer then a MoE layer with a shared expert."""
    rng = np.random.default_rng(1)
    heads, kv_lora, rope, nope, v, experts, eff = 4, 64, 16, 32, 32, 4, 128
    w = gguf.GGUFWriter(str(path), "deepseek2")
    for add, value in (("block_count", LAYERS), ("embedding_length", H), ("feed_forward_length", FF),
                       ("head_count", heads), ("head_count_kv", 1), ("context_length", 4096),
                       ("key_length", kv_lora + rope), ("value_length", kv_lora), ("key_length_mla", nope + rope),
                       ("value_length_mla", v), ("kv_lora_rank", kv_lora), ("rope_dimension_count", rope),
                       ("expert_count", experts), ("expert_used_count", 2), ("expert_shared_count", 1),
                       ("expert_feed_forward_length", eff), ("leading_dense_block_count", 1)):
        getattr(w, f"add_{add}")(value)
    if q_lora:
        w.add_q_lora_rank(q_lora)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    w.add_token_list([f"t{i}" for i in range(VOCAB)])
    _tensor(w, "token_embd.weight", (VOCAB, H), Q.Q8_0, rng)
    _tensor(w, "output.weight", (VOCAB, H), Q.Q8_0, rng)
    _tensor(w, "output_norm.weight", (H,), Q.F32, rng)
    for i in range(LAYERS):
        b = f"blk.{i}"
        for name, shape in (("attn_norm", (H,)), ("ffn_norm", (H,)), ("attn_kv_a_norm", (kv_lora,))):
            _tensor(w, f"{b}.{name}.weight", shape, Q.F32, rng)
        if q_lora:
            _tensor(w, f"{b}.attn_q_a_norm.weight", (q_lora,), Q.F32, rng)
            _tensor(w, f"{b}.attn_q_a.weight", (q_lora, H), Q.Q8_0, rng)
            _tensor(w, f"{b}.attn_q_b.weight", (heads * (nope + rope), q_lora), Q.Q8_0, rng)
        else:
            _tensor(w, f"{b}.attn_q.weight", (heads * (nope + rope), H), Q.Q8_0, rng)
        _tensor(w, f"{b}.attn_kv_a_mqa.weight", (kv_lora + rope, H), Q.Q8_0, rng)
        _tensor(w, f"{b}.attn_k_b.weight", (heads, nope, kv_lora), Q.Q8_0, rng)
        _tensor(w, f"{b}.attn_v_b.weight", (heads, kv_lora, v), Q.Q8_0, rng)
        _tensor(w, f"{b}.attn_output.weight", (H, heads * v), Q.Q8_0, rng)
        if i == 0:
            for n, shape in (("gate", (FF, H)), ("up", (FF, H)), ("down", (H, FF))):
                _tensor(w, f"{b}.ffn_{n}.weight", shape, Q.Q8_0, rng)
            continue
        _tensor(w, f"{b}.ffn_gate_inp.weight", (experts, H), Q.F32, rng)
        if router_bias:
            _tensor(w, f"{b}.exp_probs_b.bias", (experts,), Q.F32, rng)
        for n, shape in (("gate", (experts, eff, H)), ("up", (experts, eff, H)), ("down", (experts, H, eff))):
            _tensor(w, f"{b}.ffn_{n}_exps.weight", shape, Q.Q4_0, rng)
        for n, shape in (("gate", (eff, H)), ("up", (eff, H)), ("down", (H, eff))):
            _tensor(w, f"{b}.ffn_{n}_shexp.weight", shape, Q.Q8_0, rng)
    return _finish(w, path)


def write_mamba(path):
    rng = np.random.default_rng(2)
    d, n, k, r = 2 * H, 16, 4, 16
    w = gguf.GGUFWriter(str(path), "mamba")
    w.add_block_count(LAYERS)
    w.add_embedding_length(H)
    w.add_context_length(1 << 20)
    w.add_head_count(0)
    w.add_ssm_inner_size(d)
    w.add_ssm_state_size(n)
    w.add_ssm_conv_kernel(k)
    w.add_ssm_time_step_rank(r)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_token_list([f"t{i}" for i in range(VOCAB)])
    _tensor(w, "token_embd.weight", (VOCAB, H), Q.F16, rng)
    _tensor(w, "output_norm.weight", (H,), Q.F32, rng)
    for i in range(LAYERS):
        b = f"blk.{i}"
        for name, shape, qt in (("attn_norm.weight", (H,), Q.F32), ("ssm_in.weight", (2 * d, H), Q.F16),
                                ("ssm_conv1d.weight", (d, k), Q.F32), ("ssm_conv1d.bias", (d,), Q.F32),
                                ("ssm_x.weight", (r + 2 * n, d), Q.F16), ("ssm_dt.weight", (d, r), Q.F16),
                                ("ssm_dt.bias", (d,), Q.F32), ("ssm_a", (d, n), Q.F32), ("ssm_d", (d,), Q.F32),
                                ("ssm_out.weight", (H, d), Q.F16)):
            _tensor(w, f"{b}.{name}", shape, qt, rng)
    return _finish(w, path)


@pytest.mark.parametrize("writer,kw", [(write_deepseek2, {}), (write_deepseek2, {"q_lora": 0, "router_bias": False}),
                                       (write_mamba, {})])
def test_mla_and_mamba_files_are_read_exactly(tmp_path, writer, kw):
    path = writer(tmp_path / "m.gguf", **kw)
    elements, nbytes = oracle(path)
    spec = load_model(path)
    assert param_counts(spec).total == elements
    p = lr.predict(path, "h100", batch=1, prompt=16, context=0, gen=1)
    assert p.model.weight_bytes == pytest.approx(nbytes, rel=5e-3)
    if writer is write_deepseek2:
        assert spec.mla.kv_lora_rank == 64 and spec.mla.qk_nope_head_dim == 32 and spec.moe.n_shared == 1
        assert spec.moe.router_bias == kw.get("router_bias", True)
        # the cache: the latent and the rope key per token, 2 layers, 16 bits
        assert p.memory.kv_bytes_per_token == pytest.approx(LAYERS * (64 + 16) * 2)
    else:
        assert spec.mamba.dt_rank == 16 and p.memory.kv_bytes_per_token == 0
