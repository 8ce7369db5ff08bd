import pytest

from llm_roofline.errors import UserError
from llm_roofline.formats import FORMATS, kv_bits, load_format

# Bits per weight worked out from the storage layouts (ggml-common.h blocks; group sizes).
LAYOUTS = {
    "q4_0": 18 * 8 / 32,  # 32 4-bit weights + fp16 scale in 18 bytes
    "q8_0": 34 * 8 / 32,
    "q5_0": 22 * 8 / 32,
    "q6_k": 210 * 8 / 256,
    "int4-awq": 4 + 16 / 128 + 4 / 128,
    "nvfp4": 4 + 8 / 16,
    "mxfp4": 4 + 8 / 32,
    "f16": 16,
    "bf16": 16,
    "f32": 32,
    "fp8": 8,
}


@pytest.mark.parametrize("fid,bits", LAYOUTS.items())
def test_bits_from_layouts(fid, bits):
    assert load_format(fid).bits == pytest.approx(bits)


def test_k_quant_mixes_reproduce_the_llama2_7b_file_average():
    # llama.cpp quantize README, Llama 2 7B: Q4_K_M 4.84 bpw over the whole file, output.weight in Q6_K.
    fmt = load_format("q4_k_m")
    body, head = 6.738e9 - 0.131e9, 0.131e9
    assert (fmt.bits * body + fmt.lm_head_bits * head) / 6.738e9 == pytest.approx(4.84, abs=0.005)


def test_every_issue_format_exists():
    for fid in ["f32", "f16", "bf16", "fp8", "int8", "int4", "q8_0", "q6_k", "q5_k_m", "q5_0", "q4_k_m", "q4_k_s",
                "q4_0", "q3_k_m", "q2_k", "int4-awq", "int4-gptq", "nvfp4", "mxfp4", "q4f16_1"]:
        assert fid in FORMATS


def test_spellings_and_exl2():
    assert load_format("Q4_K_M").id == load_format("q4-k-m").id == "q4_k_m"
    assert load_format("fp16").id == "f16"
    assert load_format("exl2-4.65").bits == 4.65
    with pytest.raises(UserError, match="between 1 and 8.5"):
        load_format("exl2-12")
    with pytest.raises(UserError, match="closest: q4_k_m"):
        load_format("q4_km")


def test_kv_formats():
    assert kv_bits("fp8") == 8 and kv_bits("q8_0") == 8.5 and kv_bits("F16") == 16
    with pytest.raises(UserError, match="KV-cache format"):
        kv_bits("q2_k")


@pytest.mark.parametrize("model,fmt,gib", [
    # llama-bench file sizes quoted in shared/data/measurements/README.md
    ("llama-2-7b", "f16", 12.55), ("llama-2-7b", "q8_0", 6.67), ("llama-2-7b", "q4_0", 3.56),
    ("llama-3-8b", "q4_k_m", 4.58), ("llama-3-70b", "q4_k_m", 39.59),
])
def test_model_file_sizes_match_llama_bench(model, fmt, gib):
    from llm_roofline.architecture import load_model
    from llm_roofline.memory import weight_bytes

    assert weight_bytes(load_model(model), load_format(fmt)) / 2**30 == pytest.approx(gib, rel=0.006)


def test_mxfp4_on_gpt_oss_matches_llama_cpps_published_file():
    """ggml-org/gpt-oss-20b-GGUF's gpt-oss-20b-mxfp4.gguf is 11.27 GiB (Hugging Face file listing): MXFP4 experts,
    every other matrix Q8_0. Counting attention, router, embedding and output in bf16 instead gives 12.8 GiB."""
    import llm_roofline as lr

    p = lr.predict("gpt-oss-20b", "h100", weights="mxfp4")
    assert p.model.weight_bytes / 2**30 == pytest.approx(11.27, rel=0.01)


def _llama_8b_with(quant):
    import json

    from llm_roofline import catalog

    raw = json.loads((catalog.MODELS_DIR / "llama-3.1-8b.json").read_text())
    raw = raw.get("config", raw)
    return {**raw, "quantization_config": quant}


def test_quantization_config_sets_the_checkpoints_weights(tmp_path):
    """An 8B GPTQ checkpoint: every layer matrix in 4 bits plus an fp16 scale and a 4-bit zero per 128 weights,
    embedding and lm_head (128256 x 4096 each) in 16 bits, norms in 16."""
    import json

    import llm_roofline as lr
    from llm_roofline.errors import UserError

    path = tmp_path / "config.json"
    path.write_text(json.dumps(_llama_8b_with({"quant_method": "gptq", "bits": 4, "group_size": 128})))
    p = lr.predict(path, "4090")
    layer_matrices = 32 * (4096 * (4096 + 2 * 1024 + 4096) + 3 * 4096 * 14336)
    norms = 32 * 2 * 4096 + 4096
    want = layer_matrices * (4 + 20 / 128) / 8 + 2 * 128256 * 4096 * 2 + norms * 2
    assert p.workload.weights == "int4-gptq" and p.model.weight_bytes == pytest.approx(want, rel=1e-9)
    assert p.model.weight_bytes < 6e9  # not 16.1 GB of bf16
    for quant, fid in (({"quant_method": "awq", "bits": 4, "group_size": 64}, "awq-4bit-g64"),
                       ({"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_use_double_quant": True},
                        "bnb-4bit"),
                       ({"quant_method": "compressed-tensors", "config_groups": {"g": {"weights": {
                           "num_bits": 8, "type": "float"}}}}, "fp8")):
        path.write_text(json.dumps(_llama_8b_with(quant)))
        assert lr.predict(path, "h100").workload.weights == fid
    path.write_text(json.dumps(_llama_8b_with({"quant_method": "hqq"})))
    with pytest.raises(UserError, match="hqq.*--weights"):
        lr.predict(path, "h100")
    assert lr.predict(path, "h100", weights="int4").workload.weights == "int4"
