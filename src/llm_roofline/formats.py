"""Number formats: bytes read per weight (block scales included) and which tensors each format leaves alone.

Decode reads every weight once per step, so a format's speed is its bits per weight. The figures are the
storage layouts, not marketing names:
  ggml blocks (llama.cpp ggml-common.h): Q4_0 = 32 weights in 18 bytes (4.5 bpw), Q4_1 20 B (5.0), Q5_0 22 B
  (5.5), Q5_1 24 B (6.0), Q8_0 34 B (8.5), Q6_K = 256 weights in 210 B (6.5625).
  K-quant mixes (Q2_K ... Q5_K_M) mix block types per tensor; their whole-file averages for Llama-2-7B are in
  llama.cpp's tools/quantize/README.md (Q2_K 3.35, Q3_K_M 3.91, Q4_K_S 4.58, Q4_K_M 4.84, Q5_K_M 5.68). The
  per-layer figure below is that average with the Q6_K output tensor taken out, so that the whole file adds
  up again: bulk = (avg x 6.738e9 - 6.5625 x 0.131e9) / 6.607e9.
  Group quantisation: INT4 with a 16-bit scale per group of 128 plus packed 4-bit zeros (AWQ, GPTQ): 4 + 16/128
  + 4/128 = 4.16; gpt-fast int4 (group 32, bf16 scale and bf16 zero): 4 + 32/32 = 5.0; MLC q4f16_1 (group 32,
  fp16 scale): 4.5; NVFP4 (16 FP4 values + one FP8 scale): 4.5; MXFP4 (32 FP4 values + one 8-bit scale): 4.25.
Conventions for the tensors a format does not quantise are stated per format (`keeps`) and applied in ops.py.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from .errors import UserError, closest

Q6_K_BITS = 210 * 8 / 256  # 6.5625


@dataclass(frozen=True)
class WeightFormat:
    id: str
    bits: float  # bits read per weight of the quantised matrices, block scales included
    compute: str  # dtype whose peak the matmuls run at: fp32, fp16, fp8, int8, fp4
    embedding_bits: float  # token embedding table (a lookup reads one row per token)
    lm_head_bits: float  # output projection when it is not tied to the embedding
    norm_bits: float  # norms, biases and other 1-D tensors
    moe_other_bits: float | None = None  # on MoE models, the linear layers other than the routed experts
    keeps: str = ""
    source: str = ""

    @property
    def bytes_per_weight(self) -> float:
        return self.bits / 8

    @property
    def ggml(self) -> bool:
        """A llama.cpp format: a GGUF file's own, or one of ggml's block types."""
        return self.id.startswith("gguf-") or self.source == _GGML_SRC

    @property
    def activation_bytes(self) -> int:
        """Activations and attention run in fp32 for f32 checkpoints and in 16 bits otherwise."""
        return 4 if self.id == "f32" else 2

    def to_dict(self) -> dict:
        return asdict(self)


def _k_mix(avg_llama2_7b: float) -> float:
    return round((avg_llama2_7b * 6.738e9 - Q6_K_BITS * 0.131e9) / 6.607e9, 3)


_GGML = "llama.cpp: token_embd in the file's base type, output.weight in Q6_K (untied models), norms in F32"
_GGML_SRC = "llama.cpp ggml-common.h block layouts; tools/quantize/README.md (Llama 2 7B bpw)"
_HF = "embedding and lm_head in 16 bits, as AutoAWQ / AutoGPTQ / TensorRT-LLM leave them"


def _ggml(fid: str, bits: float, output_bits: float = Q6_K_BITS) -> WeightFormat:
    return WeightFormat(fid, bits, "int8", bits, output_bits, 32, keeps=_GGML, source=_GGML_SRC)


def _q16(fid: str, bits: float, compute: str, keeps: str = _HF, source: str = "", head: float = 16) -> WeightFormat:
    return WeightFormat(fid, bits, compute, 16, head, 16, keeps=keeps, source=source)


Q8_0_BITS = 8 + 16 / 32  # ggml Q8_0: 32 int8 values and one fp16 scale

FORMATS: dict[str, WeightFormat] = {
    "f32": WeightFormat("f32", 32, "fp32", 32, 32, 32, keeps="everything in 32 bits", source="IEEE 754"),
    "f16": WeightFormat("f16", 16, "fp16", 16, 16, 16, keeps="everything in 16 bits", source="IEEE 754"),
    "bf16": WeightFormat("bf16", 16, "bf16", 16, 16, 16, keeps="everything in 16 bits", source="bfloat16"),
    "fp8": _q16("fp8", 8, "fp8", source="FP8 E4M3 with per-tensor or 128x128 block scales (<0.1% extra)"),
    "int8": _q16(
        "int8", 8, "fp16",
        keeps="embedding in 16 bits; every linear layer incl. lm_head in int8 (gpt-fast int8 weight-only)",
        source="pytorch-labs/gpt-fast quantize.py: int8 weights, one scale per output channel", head=8,
    ),
    "int4": _q16(
        "int4", 5.0, "fp16",
        keeps="embedding in 16 bits; every linear layer incl. lm_head quantised (gpt-fast int4)",
        source="pytorch-labs/gpt-fast int4: group 32, bf16 scale + bf16 zero per group", head=5.0,
    ),
    "int4-awq": _q16("int4-awq", 4 + 16 / 128 + 4 / 128, "fp16", source="AWQ: group 128, fp16 scale, 4-bit zero"),
    "int4-gptq": _q16("int4-gptq", 4 + 16 / 128 + 4 / 128, "fp16", source="GPTQ: group 128, fp16 scale, 4-bit zero"),
    "nvfp4": _q16("nvfp4", 4 + 8 / 16, "fp4", source="NVIDIA NVFP4: 16 E2M1 values share one FP8 E4M3 scale"),
    "mxfp4": WeightFormat(
        "mxfp4", 4 + 8 / 32, "fp4", Q8_0_BITS, Q8_0_BITS, 32, moe_other_bits=Q8_0_BITS,
        keeps="as llama.cpp's published MXFP4 GGUFs (ggml-org/gpt-oss-20b-GGUF: 11.27 GiB): on MoE models the "
        "routed experts are MXFP4 and every other matrix (attention, router, embedding, output) Q8_0, norms f32; "
        "on dense models every linear layer MXFP4, embedding and output Q8_0. A checkpoint that keeps those in "
        "bf16 (gpt-oss on Hugging Face) reads more bytes than this counts, so its ceiling is looser",
        source="OCP Microscaling spec v1.0: 32 E2M1 values share one E8M0 scale; Q8_0: 32 int8 + one fp16 scale",
    ),
    "q4f16_1": WeightFormat(
        "q4f16_1", 4.5, "fp16", 4.5, 4.5, 16, keeps="MLC quantises embedding and lm_head too; norms in fp16",
        source="mlc-llm q4f16_1: 4-bit, group 32, fp16 scale",
    ),
    "q8_0": _ggml("q8_0", 8.5, output_bits=8.5),
    "q6_k": _ggml("q6_k", Q6_K_BITS),
    "q5_k_m": _ggml("q5_k_m", _k_mix(5.68)),
    "q5_0": _ggml("q5_0", 5.5),
    "q4_k_m": _ggml("q4_k_m", _k_mix(4.84)),
    "q4_k_s": _ggml("q4_k_s", _k_mix(4.58)),
    "q4_0": _ggml("q4_0", 4.5),
    "q3_k_m": _ggml("q3_k_m", _k_mix(3.91)),
    "q2_k": _ggml("q2_k", _k_mix(3.35)),
}
ALIASES = {"fp16": "f16", "float16": "f16", "bfloat16": "bf16", "fp32": "f32", "float32": "f32", "e4m3": "fp8",
           "awq": "int4-awq", "gptq": "int4-gptq"}

# KV-cache formats: bits per cached value, block scales included.
KV_FORMATS: dict[str, float] = {
    "f32": 32, "f16": 16, "bf16": 16, "fp8": 8, "int8": 8, "q8_0": 8.5, "q5_1": 6, "q5_0": 5.5, "q4_1": 5,
    "q4_0": 4.5, "int4": 4.5, "nvfp4": 4.5,
}
EXL2 = re.compile(r"^exl2-(\d+(?:\.\d+)?)$")


def _normalize(name: str) -> str:
    """q4_k_m, Q4-K-M and q4-k-m are the same format; so are int4_awq and int4-awq."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    for candidate in (key, key.replace("_", "-"), key.replace("-", "_")):
        if candidate in FORMATS or candidate in KV_FORMATS or EXL2.match(candidate):
            return candidate
    return key


def format_ids() -> list[str]:
    return [*FORMATS, "exl2-<bpw>"]


def load_format(name: str | WeightFormat) -> WeightFormat:
    if isinstance(name, WeightFormat):
        return name
    key = _normalize(name)
    if key in FORMATS:
        return FORMATS[key]
    m = EXL2.match(key)
    if m:
        bpw = float(m.group(1))
        if not 1.0 <= bpw <= 8.5:
            raise UserError(f"exl2 bits per weight must be between 1 and 8.5, got {bpw}")
        # ExLlamaV2 keeps the embedding in fp16 and quantises the head to 6 bits by default.
        return WeightFormat(f"exl2-{bpw:g}", bpw, "fp16", 16, 6, 16,
                            keeps="embedding fp16, lm_head 6 bits (ExLlamaV2 default head_bits)",
                            source="turboderp/exllamav2: EXL2 mixed precision averaging <bpw> bits")
    raise UserError(f"unknown weight format {name!r}{closest(key, format_ids())}; known: {', '.join(format_ids())}")


def kv_bits(name: str) -> float:
    key = _normalize(name)
    if key not in KV_FORMATS:
        raise UserError(f"unknown KV-cache format {name!r}{closest(key, KV_FORMATS)}; known: {', '.join(KV_FORMATS)}")
    return KV_FORMATS[key]


def _grouped(fid: str, bits: int, group: int, source: str) -> WeightFormat:
    """Integer weights in groups with an fp16 scale and a `bits`-bit zero per group (GPTQ, AWQ, w4a16)."""
    per = bits + (16 + bits) / group if group > 0 else bits
    return WeightFormat(fid, per, "fp16", 16, 16, 16, keeps=_HF, source=source)


def checkpoint_format(quant: dict) -> WeightFormat | None:
    """The weights a config's quantization_config describes (transformers' quantizers), or None where the method
    is not modelled. Bits count the scales and zeros each group carries."""
    method = str(quant.get("quant_method", "")).lower()
    if method in ("fp8", "mxfp4", "fbgemm_fp8"):
        return FORMATS["fp8" if method == "fbgemm_fp8" else method]
    if method in ("gptq", "awq"):
        bits, group = int(quant.get("bits", 4)), int(quant.get("group_size", 128) or -1)
        if bits == 4 and group == 128:
            return FORMATS[f"int4-{method}"]
        return _grouped(f"{method}-{bits}bit-g{group}", bits, group, f"{method.upper()}: {bits}-bit, group {group}, "
                        f"fp16 scale and {bits}-bit zero per group")
    if method == "bitsandbytes":
        if quant.get("load_in_8bit"):
            return FORMATS["int8"]
        if quant.get("load_in_4bit"):
            double = bool(quant.get("bnb_4bit_use_double_quant"))
            # NF4/FP4 blocks of 64 with an fp32 absmax, or (double quantisation) an 8-bit absmax per block and an
            # fp32 scale per 256 blocks (Dettmers et al. 2023, QLoRA, section 3)
            bits = 4 + (8 / 64 + 32 / (64 * 256) if double else 32 / 64)
            return WeightFormat("bnb-4bit", bits, "fp16", 16, 16, 16, keeps=_HF,
                                source="bitsandbytes 4-bit: blocks of 64 (QLoRA, Dettmers et al. 2023)")
    if method == "compressed-tensors":
        groups = [g for g in (quant.get("config_groups") or {}).values() if isinstance(g, dict)]
        weights = [g.get("weights") or {} for g in groups]
        if quant.get("format") == "nvfp4-pack-quantized":
            return FORMATS["nvfp4"]
        if weights and all(isinstance(w, dict) for w in weights):
            w = weights[0]
            bits, kind = int(w.get("num_bits", 0)), str(w.get("type", ""))
            if kind == "float" and bits == 8:
                return FORMATS["fp8"]
            if kind == "int" and bits in (4, 8):
                group = int(w.get("group_size") or -1)
                return _grouped(f"w{bits}a16-g{group}", bits, group, "compressed-tensors: integer weights, fp16 "
                                "scale per group") if bits == 4 or group > 0 else FORMATS["int8"]
    return None
