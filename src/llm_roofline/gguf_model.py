"""A .gguf file (llama.cpp, Ollama, LM Studio) as MODEL: the architecture from its metadata, the bytes from its
tensors.

The header and tensor infos are read with the `gguf` package (memory-mapped: no tensor data is read). llama.cpp's
metadata keys ({arch}.block_count, .embedding_length, .attention.head_count(_kv), .expert_count, ...) become the
config the architecture reader knows for that family, so one reader models both. The weight format is the file's
own: bits per weight of each kind of tensor (linear layers, routed experts, embedding, output, norms) are the
file's bytes over its elements, so the step reads exactly the file's bytes. The architecture is then checked
against the tensors: parameter counts that disagree by more than 0.5% are refused, never guessed.
Split files (-00001-of-0000N.gguf) are read shard by shard.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from .errors import UserError
from .formats import WeightFormat

ARCHITECTURES = {  # general.architecture -> the model_type whose reader models it
    "llama": "llama", "qwen2": "qwen2", "qwen3": "qwen3", "qwen2moe": "qwen2_moe", "qwen3moe": "qwen3_moe",
    "gemma": "gemma", "gemma2": "gemma2", "gemma3": "gemma3_text", "phi3": "phi3", "olmo2": "olmo2",
    "gpt-oss": "gpt_oss", "deepseek2": "deepseek_v3", "mamba": "mamba",
}
SPLIT = re.compile(r"^(.*)-(\d{5})-of-(\d{5})\.gguf$")
MISMATCH = 0.005


def _shards(path: Path) -> list[Path]:
    m = SPLIT.match(path.name)
    if not m:
        return [path]
    n = int(m.group(3))
    shards = [path.with_name(f"{m.group(1)}-{i:05d}-of-{n:05d}.gguf") for i in range(1, n + 1)]
    missing = [s.name for s in shards if not s.is_file()]
    if missing:
        raise UserError(f"{path}: split GGUF is missing {', '.join(missing[:3])}; keep all {n} parts together")
    return shards


def _value(field):
    """A metadata field's value: a string, a number or a list of them."""
    from gguf import GGUFValueType

    if field.types and field.types[0] == GGUFValueType.ARRAY:
        return [bytes(field.parts[i]).decode("utf-8", "replace") if field.types[-1] == GGUFValueType.STRING
                else field.parts[i].tolist()[0] for i in field.data]
    part = field.parts[field.data[0]]
    if field.types[0] == GGUFValueType.STRING:
        return bytes(part).decode("utf-8", "replace")
    return part.tolist()[0]


def read_gguf(path: Path) -> "ModelSpec":  # noqa: F821
    from .architecture import param_counts, spec_from_config

    try:
        from gguf import GGUFReader
    except ImportError:  # pragma: no cover - a core dependency
        raise UserError("reading .gguf files needs the gguf package: pip install gguf") from None
    shards = _shards(path)
    try:
        readers = [GGUFReader(str(p), "r") for p in shards]
    except (ValueError, OSError, IndexError, KeyError) as exc:
        raise UserError(f"{path}: not a readable GGUF file ({str(exc).splitlines()[0] if str(exc) else exc!r})"
                        ) from None
    meta = {name: _value(f) for name, f in readers[0].fields.items() if not name.startswith("tokenizer.ggml.")
            or name == "tokenizer.ggml.tokens"}
    arch = meta.get("general.architecture")
    if arch not in ARCHITECTURES:
        raise UserError(f"{path}: GGUF architecture {arch!r} is not supported yet; supported: "
                        f"{', '.join(sorted(ARCHITECTURES))}")
    tensors = [t for r in readers for t in r.tensors]
    config = _config(meta, arch, tensors, path)
    model_id = meta.get("general.name") or path.stem
    spec = spec_from_config(config, str(model_id).strip().lower().replace(" ", "-") or path.stem, str(path))
    fmt = _file_format(tensors, meta, path, spec)
    elements = sum(int(t.n_elements) for t in tensors)
    counted = param_counts(spec).total
    if abs(counted - elements) > MISMATCH * elements:
        raise UserError(f"{path}: the architecture read from its metadata has {counted:,} parameters but the file's "
                        f"tensors hold {elements:,}; this {arch} variant is not modelled yet")
    total_bytes = sum(int(t.n_bytes) for t in tensors)
    note = (f"read from the GGUF file: {len(tensors)} tensors, {elements / 1e9:,.2f} B parameters, "
            f"{total_bytes / 2**30:,.2f} GiB ({fmt.id}: {fmt.bits:.2f} bits per linear weight)")
    return replace(spec, checkpoint_dtype=fmt.id, file_format=fmt, notes=spec.notes + (note,))


def _config(meta: dict, arch: str, tensors, path: Path) -> dict:
    def get(key, default=None):
        return meta.get(f"{arch}.{key}", default)

    names = {t.name: t for t in tensors}
    embd = names.get("token_embd.weight")
    vocab = len(meta["tokenizer.ggml.tokens"]) if "tokenizer.ggml.tokens" in meta else \
        (int(embd.shape[-1]) if embd is not None else None)
    needed = {"block_count": get("block_count"), "embedding_length": get("embedding_length")}
    if arch != "mamba":
        needed["attention.head_count"] = get("attention.head_count")
    missing = [f"{arch}.{k}" for k, v in needed.items() if v is None]
    if missing or vocab is None:
        raise UserError(f"{path}: GGUF metadata lacks {', '.join(missing) or 'the vocabulary'}")
    cfg = {
        "model_type": ARCHITECTURES[arch],
        "hidden_size": get("embedding_length"),
        "num_hidden_layers": get("block_count"),
        "num_attention_heads": get("attention.head_count"),
        "num_key_value_heads": get("attention.head_count_kv", get("attention.head_count")),
        "intermediate_size": get("feed_forward_length"),
        "max_position_embeddings": get("context_length"),
        "vocab_size": vocab,
        "tie_word_embeddings": "output.weight" not in names,
    }
    if get("attention.key_length") is not None:
        cfg["head_dim"] = get("attention.key_length")
    if get("attention.sliding_window") is not None:
        cfg["sliding_window"] = get("attention.sliding_window")
        cfg["use_sliding_window"] = arch in ("qwen2", "qwen3")
    if get("expert_count"):
        cfg.update(num_experts=get("expert_count"), num_local_experts=get("expert_count"),
                   num_experts_per_tok=get("expert_used_count"),
                   moe_intermediate_size=get("expert_feed_forward_length", get("feed_forward_length")),
                   shared_expert_intermediate_size=get("expert_shared_feed_forward_length", 0))
    if any(n.endswith("attn_q.bias") for n in names):
        cfg["attention_bias"] = True
    if arch == "gpt-oss":  # experts are the only MLP; llama.cpp slides the even layers (its swa pattern of 2)
        cfg.update(intermediate_size=get("expert_feed_forward_length"), experts_per_token=get("expert_used_count"),
                   layer_types=["sliding_attention" if i % 2 == 0 else "full_attention"
                                for i in range(int(get("block_count")))])
    if arch == "deepseek2":
        cfg.update(_deepseek2(get, names))
    if arch == "mamba":  # no attention: the SSM's sizes
        cfg.update(model_type="mamba", intermediate_size=get("ssm.inner_size"), state_size=get("ssm.state_size"),
                   conv_kernel=get("ssm.conv_kernel"), time_step_rank=get("ssm.time_step_rank"),
                   use_conv_bias=any(n.endswith("ssm_conv1d.bias") for n in names),
                   use_bias=any(n.endswith("ssm_in.bias") for n in names))
    return {k: v for k, v in cfg.items() if v is not None}


def _deepseek2(get, names: dict) -> dict:
    """DeepSeek-V2/V3 (and R1, Kimi-K2-style) MLA files. Since llama.cpp's MLA rework (ggml-org/llama.cpp pull
    request 12801) key_length is the latent's width and key_length_mla / value_length_mla the per-head sizes;
    older files give the per-head sizes as key_length / value_length. A router score-correction bias
    (exp_probs_b) marks V3's routing."""
    rope = get("rope.dimension_count")
    qk = get("attention.key_length_mla", get("attention.key_length"))
    v = get("attention.value_length_mla", get("attention.value_length"))
    if rope is None or qk is None or v is None or get("attention.kv_lora_rank") is None:
        return {"qk_rope_head_dim": None}  # the reader names what is missing
    return {"q_lora_rank": get("attention.q_lora_rank", 0), "kv_lora_rank": get("attention.kv_lora_rank"),
            "qk_rope_head_dim": rope, "qk_nope_head_dim": qk - rope, "v_head_dim": v,
            "n_routed_experts": get("expert_count"), "moe_intermediate_size": get("expert_feed_forward_length"),
            "n_shared_experts": get("expert_shared_count", 0), "first_k_dense_replace":
                get("leading_dense_block_count", 0), "moe_layer_freq": 1,
            "topk_method": "noaux_tc" if any(n.endswith("exp_probs_b.bias") for n in names) else "greedy"}


def _kind(t) -> str:
    """The architecture's kind of a GGUF tensor (what its parameters are counted under)."""
    name = t.name
    if name == "token_embd.weight":
        return "embedding"
    if name == "output.weight":
        return "lm_head"
    if "_exps" in name:
        return "expert"
    if re.search(r"\.ssm_(a|d|conv1d\.\w+|dt\.bias)$", name):  # Mamba's small tensors, counted with the norms
        return "norm"
    flat = len(t.shape) == 1 or len(t.shape) == 2 and int(t.shape[-1]) == 1
    if flat and ("norm" in name or "sinks" in name):
        return "norm"
    return "linear"  # matrices, and the biases the architecture counts with them


def _file_format(tensors, meta: dict, path: Path, spec) -> WeightFormat:
    """The file's own format: bits per weight of each kind of tensor, its bytes over the architecture's
    parameters of that kind (so the step reads exactly the file's bytes)."""
    from gguf import LlamaFileType

    from .architecture import params_by_kind

    params = params_by_kind(spec)
    nbytes = {k: 0 for k in params}
    for t in tensors:
        nbytes[_kind(t)] += int(t.n_bytes)

    def bits(kind: str, fallback: float | None = None) -> float | None:
        return 8 * nbytes[kind] / params[kind] if params[kind] and nbytes[kind] else fallback

    moe = spec.moe is not None
    other_bits = bits("linear")
    main = bits("expert") if moe else other_bits
    if main is None:
        raise UserError(f"{path}: GGUF file has no layer weights")
    try:
        name = LlamaFileType(int(meta.get("general.file_type", -1))).name.removeprefix("MOSTLY_").lower()
    except ValueError:
        name = "mixed"
    float_file = name in ("all_f32", "f16", "bf16")
    compute = ("fp32" if name == "all_f32" else "fp16") if float_file else "int8"
    return WeightFormat(
        f"gguf-{name}", main, compute, bits("embedding", main), bits("lm_head", bits("embedding", main)),
        bits("norm", 32.0), moe_other_bits=other_bits if moe else None,
        keeps="the file's own tensor types: bits per weight of each kind of tensor are its bytes over the "
              "architecture's parameters of that kind", source=f"{path.name} (GGUF header)")
