"""A llama-architecture GGUF with random weights in a real ggml type, written with the gguf package: what
`bench --engine llama.cpp` runs when no model file is at hand (nothing is downloaded). Decode and prefill cost
do not depend on the weights' values, only on their types and shapes.

Types: F16, Q8_0 and Q4_0 are quantised by gguf itself; Q4_K (which gguf does not quantise) is written as random
blocks of the right size whose two fp16 scales are set to small normal numbers (random bits would make some of
them NaN or subnormal, which no real file holds); rows that are not whole 256-value blocks fall back to Q5_0, as
llama-quantize does for Q4_K. The embedding and the output head are Q8_0 in the quantised
files (F16 in the F16 one), the norms F32. A minimal vocabulary of byte-like tokens lets llama.cpp load it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

TYPES = ("F16", "Q8_0", "Q4_0", "Q4_K")


@dataclass(frozen=True)
class Dims:
    name: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    tie: bool = False

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads


# the shapes of two public models (their config.json), random weights
QWEN25_05B = Dims("qwen2.5-0.5b-shapes", 896, 24, 14, 2, 4864, 151936, tie=True)
LLAMA32_1B = Dims("llama-3.2-1b-shapes", 2048, 16, 32, 8, 8192, 128256, tie=True)
TINY = Dims("tiny", 256, 2, 4, 2, 512, 512)


def _tensor(w, name: str, shape: tuple[int, ...], qtype: str, rng) -> None:
    import gguf

    q = gguf.GGMLQuantizationType[qtype]
    if qtype == "F32":
        w.add_tensor(name, rng.standard_normal(shape, dtype=np.float32) * 0.02)
    elif qtype == "F16":
        w.add_tensor(name, (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float16))
    elif qtype == "Q4_K" and shape[-1] % gguf.GGML_QUANT_SIZES[q][0]:
        _tensor(w, name, shape, "Q5_0", rng)  # rows that are not whole 256-blocks: llama-quantize's own fallback
    elif qtype in ("Q8_0", "Q4_0", "Q5_0"):
        w.add_tensor(name, gguf.quants.quantize(rng.standard_normal(shape, dtype=np.float32) * 0.02, q), raw_dtype=q)
    elif qtype == "Q4_K":
        block, size = gguf.GGML_QUANT_SIZES[q]
        raw = rng.integers(0, 256, (*shape[:-1], shape[-1] // block, size), dtype=np.uint8)
        raw[..., 0:2] = np.frombuffer(np.float16(1e-3).tobytes(), dtype=np.uint8)  # d
        raw[..., 2:4] = np.frombuffer(np.float16(1e-4).tobytes(), dtype=np.uint8)  # dmin
        w.add_tensor(name, raw.reshape(*shape[:-1], -1), raw_dtype=q)
    else:
        raise ValueError(f"type {qtype!r}: one of {', '.join(TYPES)}")


def write(path: str | Path, dims: Dims, qtype: str = "Q8_0", seed: int = 0) -> Path:
    """Write `dims` as a llama GGUF whose layer matrices are `qtype`."""
    import gguf

    if qtype not in TYPES:
        raise ValueError(f"type {qtype!r}: one of {', '.join(TYPES)}")
    path = Path(path)
    rng = np.random.default_rng(seed)
    side = "F16" if qtype == "F16" else "Q8_0"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name(f"{dims.name}-{qtype.lower()}")
    w.add_block_count(dims.layers)
    w.add_context_length(32768)
    w.add_embedding_length(dims.hidden)
    w.add_feed_forward_length(dims.intermediate)
    w.add_head_count(dims.heads)
    w.add_head_count_kv(dims.kv_heads)
    w.add_rope_dimension_count(dims.head_dim)
    w.add_rope_freq_base(1e6)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_file_type({"F16": gguf.LlamaFileType.MOSTLY_F16, "Q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
                     "Q4_0": gguf.LlamaFileType.MOSTLY_Q4_0, "Q4_K": gguf.LlamaFileType.MOSTLY_Q4_K_S}[qtype])
    w.add_tokenizer_model("llama")
    w.add_token_list([f"<t{i}>" for i in range(dims.vocab)])
    w.add_token_scores([0.0] * dims.vocab)
    w.add_token_types([1] * dims.vocab)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    h, hd = dims.hidden, dims.head_dim
    _tensor(w, "token_embd.weight", (dims.vocab, h), side, rng)
    if not dims.tie:
        _tensor(w, "output.weight", (dims.vocab, h), side, rng)
    _tensor(w, "output_norm.weight", (h,), "F32", rng)
    for i in range(dims.layers):
        b = f"blk.{i}"
        _tensor(w, f"{b}.attn_norm.weight", (h,), "F32", rng)
        _tensor(w, f"{b}.ffn_norm.weight", (h,), "F32", rng)
        for name, shape in (("attn_q", (dims.heads * hd, h)), ("attn_k", (dims.kv_heads * hd, h)),
                            ("attn_v", (dims.kv_heads * hd, h)), ("attn_output", (h, dims.heads * hd)),
                            ("ffn_gate", (dims.intermediate, h)), ("ffn_up", (dims.intermediate, h)),
                            ("ffn_down", (h, dims.intermediate))):
            _tensor(w, f"{b}.{name}.weight", shape, qtype, rng)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
