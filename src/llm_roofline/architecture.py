"""A Hugging Face config.json turned into one normalized decoder spec, layer by layer.

Only the config is read (never modeling code: no trust_remote_code). Fields a config omits take the default of
the transformers configuration class of its model_type (the DEFAULTS table below, read from transformers'
configuration_*.py). Every count here is in parameters (numbers), not bytes: formats.py turns them into bytes.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from collections import Counter
from functools import cache, cached_property
from pathlib import Path

from . import catalog
from .errors import UserError, closest
from .formats import WeightFormat


@dataclass(frozen=True)
class LayerSpec:
    """One decoder layer: its attention (kind, heads, window) and its MLP (dense or routed experts)."""

    attention: str  # "gqa" (MHA/GQA/MQA), "mla" (DeepSeek latent attention), "linear" (Gated DeltaNet)
    n_heads: int
    n_kv_heads: int
    head_dim: int
    window: int | None = None  # sliding-window length; None = attends to the whole context
    k_eq_v: bool = False  # keys double as values (Gemma 4 full-attention layers): one tensor cached
    q_gate: bool = False  # attention output gate computed by q_proj (Qwen3.5): q_proj is twice as wide
    mlp: str = "dense"  # "dense", "moe", or "moe+dense" (Gemma 4: a dense MLP beside the experts)
    intermediate: int = 0  # dense MLP width
    held: int | None = None  # tokens of cache kept, where it differs from `window` (chunked attention: its chunk)
    mamba: bool = False  # a Mamba-2 mixer beside the attention, on the same input (Falcon-H1)
    reads: int | None = None  # keys a token reads when the cache holds more (DeepSeek sparse attention's top-k)


@dataclass(frozen=True)
class MoESpec:
    n_experts: int
    top_k: int
    expert_intermediate: int
    n_shared: int = 0
    shared_intermediate: int = 0
    router_bias: bool = False
    expert_bias: bool = False


@dataclass(frozen=True)
class MLASpec:
    q_lora_rank: int  # 0 = queries projected directly from the hidden state
    kv_lora_rank: int
    qk_nope_head_dim: int
    qk_rope_head_dim: int
    v_head_dim: int
    # DeepSeek sparse attention (V3.2): a lightning indexer scores every cached token with its own small keys,
    # then the attention reads only the top index_topk of them
    index_topk: int = 0
    index_head_dim: int = 0
    index_n_heads: int = 0


@dataclass(frozen=True)
class MambaSpec:
    """Mamba-2 mixers (Mamba2, Granite 4.0 hybrids): a fixed-size SSM state per sequence instead of a KV cache."""

    n_heads: int
    head_dim: int
    d_state: int
    n_groups: int
    conv_kernel: int
    conv_bias: bool = True
    gated_norm: bool = True  # an RMSNorm over d_inner before out_proj (Falcon-H1 may leave it out)
    state_bytes: int = 4  # the SSM state is kept in fp32 (mamba_ssm_dtype)
    dt_rank: int = 0  # Mamba-1 (Jamba): x_proj and dt_proj through this rank; n_heads = d_inner, head_dim 1
    bc_norms: bool = False  # Jamba's RMSNorms on dt, B and C
    proj_bias: bool = False  # Mamba-1's use_bias: biases on in_proj and out_proj

    @property
    def d_inner(self) -> int:
        return self.n_heads * self.head_dim

    @property
    def conv_dim(self) -> int:
        return self.d_inner + 2 * self.n_groups * self.d_state


@dataclass(frozen=True)
class LinearAttentionSpec:
    """Linear attention with a fixed-size recurrent state instead of a growing KV cache: Gated DeltaNet (Qwen3.5 /
    Qwen3-Next) or MiniMax's lightning attention (kind "lightning": no convolution, an output gate)."""

    n_key_heads: int
    n_value_heads: int
    key_head_dim: int
    value_head_dim: int
    conv_kernel: int
    state_bytes: int = 4  # the recurrent state is kept in fp32 (mamba_ssm_dtype)
    kind: str = "gated_deltanet"
    chunk: int = 64  # tokens per block of the chunked prefill (intra-block attention)


@dataclass(frozen=True)
class ModelSpec:
    id: str
    model_type: str
    hidden_size: int
    vocab_size: int
    layers: tuple[LayerSpec, ...]
    tie_embeddings: bool
    max_position: int | None
    checkpoint_dtype: str  # format id of the published weights: bf16, f16, f32, fp8, mxfp4
    mlp_gated: bool = True  # SwiGLU/GeGLU: three matrices; plain GELU/ReLU MLP: two
    norm: str = "rms"  # "rms" (weight only) or "layer" (weight and bias)
    norms_per_layer: int = 2
    qk_norm: str | None = None  # "head" (per head_dim) or "full" (over all heads, OLMo 2)
    attn_bias: bool = False  # biases on q, k, v
    attn_out_bias: bool = False
    mlp_bias: bool = False
    lm_head_bias: bool = False
    attention_sinks: bool = False  # one learned logit per head and layer (gpt-oss)
    learned_positions: int = 0  # rows of a learned position table (GPT-2, OPT)
    embed_proj_dim: int = 0  # OPT-350m style project_in / project_out
    moe: MoESpec | None = None
    mla: MLASpec | None = None
    linear_attention: LinearAttentionSpec | None = None
    mamba: MambaSpec | None = None  # set: the "linear" layers are Mamba-2 mixers
    mtp_layers: int = 0  # multi-token-prediction modules the checkpoint carries (not counted in its parameters)
    source: str = ""
    notes: tuple[str, ...] = ()
    aliases: tuple[str, ...] = field(default=())
    file_format: WeightFormat | None = None  # a weights file's own format (a GGUF's tensor types)

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @cached_property
    def layer_kinds(self) -> tuple[tuple[LayerSpec, int], ...]:
        """Each distinct layer once with how many times it occurs (a 61-layer model has two or three kinds), in
        order of first appearance: every per-layer sum runs over these, not over all the layers."""
        return tuple(Counter(self.layers).items())

    def to_dict(self) -> dict:
        out = asdict(self)
        out["n_layers"] = self.n_layers
        # Runs of identical layers are listed once with a count, to keep the JSON readable.
        runs: list[dict] = []
        for layer in out.pop("layers"):
            if runs and runs[-1]["layer"] == layer:
                runs[-1]["count"] += 1
            else:
                runs.append({"layer": layer, "count": 1})
        out["layer_runs"] = runs
        return out


# ---------------------------------------------------------------------------------------------------------------
# Reading configs

# transformers' configuration defaults for the fields our catalog's configs sometimes omit.
DEFAULTS: dict[str, dict] = {
    "llama": {"tie_word_embeddings": False, "max_position_embeddings": 2048, "rms_norm_eps": 1e-6},
    "mistral": {"tie_word_embeddings": False, "sliding_window": 4096, "max_position_embeddings": 4096 * 32},
    "mixtral": {"tie_word_embeddings": False, "num_local_experts": 8, "num_experts_per_tok": 2},
    "qwen2": {"tie_word_embeddings": False, "use_sliding_window": False},
    "qwen2_moe": {"tie_word_embeddings": False, "use_sliding_window": False},
    "qwen3": {"tie_word_embeddings": False, "use_sliding_window": False},
    "qwen3_moe": {"tie_word_embeddings": False, "use_sliding_window": False, "decoder_sparse_step": 1},
    "gemma": {"tie_word_embeddings": True, "head_dim": 256},
    "gemma2": {"tie_word_embeddings": True, "head_dim": 256, "sliding_window": 4096},
    # Gemma3TextConfig: the multimodal wrapper's text_config is sparse and relies on these.
    "gemma3_text": {
        "tie_word_embeddings": True, "vocab_size": 262208, "hidden_size": 2304, "intermediate_size": 9216,
        "num_hidden_layers": 26, "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256,
        "sliding_window": 4096, "sliding_window_pattern": 6, "max_position_embeddings": 131072,
    },
    "gemma4_text": {"tie_word_embeddings": True},
    "phi3": {"tie_word_embeddings": False},
    "olmo2": {"tie_word_embeddings": False},
    "deepseek_v2": {"tie_word_embeddings": False, "first_k_dense_replace": 0, "moe_layer_freq": 1,
                    "n_shared_experts": None, "q_lora_rank": 1536},
    "deepseek_v3": {"tie_word_embeddings": False, "first_k_dense_replace": 3, "moe_layer_freq": 1,
                    "n_shared_experts": 1, "q_lora_rank": 1536},
    "deepseek_v32": {"tie_word_embeddings": False, "first_k_dense_replace": 3, "moe_layer_freq": 1,
                     "n_shared_experts": 1, "q_lora_rank": 1536, "topk_method": "noaux_tc", "index_topk": 2048},
    "gpt_oss": {"tie_word_embeddings": False, "head_dim": 64, "sliding_window": 128},
    "qwen3_5_text": {"tie_word_embeddings": False, "full_attention_interval": 4, "attn_output_gate": True},
    "gpt2": {"n_inner": None, "n_positions": 1024, "tie_word_embeddings": True},
    "gptj": {"n_inner": None, "n_positions": 2048, "tie_word_embeddings": False},
    "opt": {"enable_bias": True, "do_layer_norm_before": True, "tie_word_embeddings": True,
            "max_position_embeddings": 2048},
    "falcon": {"tie_word_embeddings": True, "bias": False, "parallel_attn": True, "multi_query": True,
               "new_decoder_architecture": False, "max_position_embeddings": 2048},
    # 2025 decoders whose operators the Llama-style reader models (transformers' config classes give the keys)
    "smollm3": {"tie_word_embeddings": True},  # NoPE layers change no weight
    "olmo3": {"tie_word_embeddings": False},  # OLMo 2's layout, sliding / full layers from layer_types
    "exaone4": {"tie_word_embeddings": False},  # post-norms and per-head q/k norms, layer_types
    "cohere2": {"tie_word_embeddings": True, "use_qk_norm": False},  # one weight-only LayerNorm, parallel blocks
    "glm4_moe": {"tie_word_embeddings": False, "first_k_dense_replace": 1, "n_shared_experts": 1,
                 "attention_bias": False, "use_qk_norm": False},
    "granitemoe": {"tie_word_embeddings": True},  # Mixtral-style experts; multipliers change no weight
    "qwen3_next": {"tie_word_embeddings": False, "attn_output_gate": True, "decoder_sparse_step": 1},
    "llama4_text": {"tie_word_embeddings": False, "interleave_moe_layer_step": 1, "attention_chunk_size": 8192},
    "mamba2": {"tie_word_embeddings": False, "n_groups": 8, "conv_kernel": 4, "expand": 2},
    "granitemoehybrid": {"tie_word_embeddings": True, "num_experts_per_tok": 2},
    "falcon_h1": {"tie_word_embeddings": False, "mamba_rms_norm": False, "attention_bias": False},
    "jamba": {"tie_word_embeddings": False, "attn_layer_period": 8, "attn_layer_offset": 4, "expert_layer_period": 2,
              "expert_layer_offset": 1, "mamba_dt_rank": 256, "mamba_expand": 2},
    "ernie4_5_moe": {"tie_word_embeddings": True, "moe_layer_interval": 1, "moe_layer_start_index": 1,
                     "moe_num_shared_experts": 0},
    "hunyuan_v1_moe": {"tie_word_embeddings": False, "num_experts": 1, "moe_topk": 1},
    "minimax": {"tie_word_embeddings": False, "block_size": 256},
    "mamba": {"tie_word_embeddings": True, "expand": 2, "conv_kernel": 4, "state_size": 16,
              "time_step_rank": "auto", "use_conv_bias": True, "use_bias": False},
}
SUPPORTED = sorted(DEFAULTS)
# Physical bounds on what a config may say. Every size field is at most MAX_SIZE (the widest real tensors are
# ~2^18: a 262k vocabulary), layer counts at most MAX_LAYERS (the deepest published decoders have ~120), so that
# a mutated or hostile config is refused in microseconds instead of building millions of layers.
MAX_SIZE = 1 << 24
MAX_LAYERS = 1024
MAX_POSITIONS = 1 << 28
LAYER_KEYS = ("num_hidden_layers", "n_layer")
POSITION_KEYS = ("max_position_embeddings", "n_positions")
DTYPES = {"bfloat16": "bf16", "float16": "f16", "float32": "f32", "half": "f16", "float": "f32"}


class _Config:
    """Dict access that names the missing field in the error the user sees."""

    def __init__(self, data: dict, model_type: str, origin: str):
        # An explicit null stays null (q_lora_rank: null means no query compression); only absent keys default.
        self.data = {**DEFAULTS.get(model_type, {}), **data}
        self.model_type = model_type
        self.origin = origin

    def get(self, *keys: str, default=None):
        for key in keys:
            if self.data.get(key) is not None:
                return self.data[key]
        return default

    def int(self, *keys: str, default: int | None = None, minimum: int = 1, maximum: int | None = None) -> int:
        value = self.get(*keys, default=default)
        if value is None:
            raise UserError(f"{self.origin}: missing field {' / '.join(repr(k) for k in keys)} "
                            f"(model_type {self.model_type!r})")
        if maximum is None:
            maximum = MAX_LAYERS if keys[0] in LAYER_KEYS else MAX_POSITIONS if keys[0] in POSITION_KEYS else MAX_SIZE
        name = next((k for k in keys if self.data.get(k) is not None), keys[0])
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or \
                int(value) != value or not minimum <= value <= maximum:
            raise UserError(f"{self.origin}: field {name!r} must be an integer from {minimum} to {maximum:,}, "
                            f"got {value!r}")
        return int(value)

    def optional_int(self, *keys: str, minimum: int = 1) -> int | None:
        """An integer field that may be absent or null."""
        return None if self.get(*keys) is None else self.int(*keys, minimum=minimum)

    def flag(self, key: str, default: bool = False) -> bool:
        """A boolean field: true/false (or 0/1); a string such as "false" is refused rather than read as true."""
        value = self.get(key, default=default)
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise UserError(f"{self.origin}: field {key!r} must be true or false, got {value!r}")


def _checkpoint_dtype(raw: dict, text: dict) -> tuple[str, list[str]]:
    quant = raw.get("quantization_config") or {}
    if not isinstance(quant, dict):
        raise UserError(f"field 'quantization_config' must be an object, got {quant!r}")
    method = str(quant.get("quant_method", "")).lower()
    if method:
        from .formats import checkpoint_format

        fmt = checkpoint_format(quant)
        if fmt is None:
            return f"quantized:{method}", [f"quantization_config {method!r} is not modelled yet"]
        return fmt.id, [f"published checkpoint is {fmt.id} ({method} quantization_config: {fmt.bits:.3f} bits per "
                        "weight, scales included)"]
    notes = []
    dtype = raw.get("torch_dtype") or raw.get("dtype") or text.get("torch_dtype") or text.get("dtype")
    if dtype is not None and not isinstance(dtype, str):
        raise UserError(f"field 'torch_dtype' must be a string such as \"bfloat16\", got {dtype!r}")
    if dtype is None:
        return "f32", notes + ["config names no dtype; transformers loads such checkpoints in float32"]
    return DTYPES.get(str(dtype), "bf16"), notes


def spec_from_config(raw: dict, model_id: str, origin: str = "config.json") -> ModelSpec:
    if not isinstance(raw, dict):
        raise UserError(f"{origin}: expected a JSON object")
    _reject_non_finite(raw, origin)
    text = raw.get("text_config") if isinstance(raw.get("text_config"), dict) else None
    model_type = (text or {}).get("model_type") or raw.get("model_type")
    if text is not None and model_type is None:
        model_type = f"{raw.get('model_type', '')}_text"
    if not model_type:
        raise UserError(f"{origin}: missing field 'model_type'")
    if not isinstance(model_type, str):
        raise UserError(f"{origin}: field 'model_type' must be a string, got {model_type!r}")
    model_type = {"gemma3": "gemma3_text", "gemma4": "gemma4_text", "qwen3_5": "qwen3_5_text"}.get(model_type,
                                                                                                   model_type)
    data = {**raw, **(text or {})} if text else raw
    if text and "tie_word_embeddings" in raw and "tie_word_embeddings" not in text:
        data["tie_word_embeddings"] = raw["tie_word_embeddings"]
    cfg = _Config(data, model_type, origin)
    dtype, notes = _checkpoint_dtype(raw, text or {})
    if text:
        notes.append("multimodal wrapper: the text decoder (text_config) is modelled; vision/audio towers are not")
    if model_type not in DEFAULTS:
        raise UserError(f"{origin}: model_type {model_type!r}{_not_a_decoder(raw)} is not supported yet; "
                        f"supported: {', '.join(SUPPORTED)}")
    reader = _READERS.get(model_type, _read_llama_like)
    spec = check_spec(reader(cfg, model_id, dtype, notes))
    quant = raw.get("quantization_config")
    if quant:
        from .formats import checkpoint_format

        spec = replace(spec, file_format=checkpoint_format(quant))
    return spec


ENCODER_ONLY = {"bert", "roberta", "xlm-roberta", "deberta", "deberta-v2", "distilbert", "electra", "albert",
                "modernbert", "camembert", "mpnet", "nomic_bert", "xlm"}
VISION_ONLY = {"clip", "clip_vision_model", "siglip", "siglip_vision_model", "vit", "dinov2", "convnext", "swin",
               "beit", "deit", "sam"}


def _not_a_decoder(raw: dict) -> str:
    """' (an encoder-decoder model)' and the like where the config says what kind of model it is."""
    mt = str(raw.get("model_type", "")).lower()
    arch = " ".join(str(a) for a in raw.get("architectures") or [] if isinstance(a, str))
    if raw.get("is_encoder_decoder") is True or "ForConditionalGeneration" in arch and "encoder_layers" in raw:
        return " (an encoder-decoder model: only decoder-only language models are modelled)"
    if mt in ENCODER_ONLY or any(k in arch for k in ("ForMaskedLM", "ForSequenceClassification", "ForTokenClassif")):
        return " (an encoder-only model: only decoder-only language models are modelled)"
    if mt in VISION_ONLY or "vision_config" in raw and "text_config" not in raw:
        return " (a vision model: only decoder-only language models are modelled)"
    return ""


UNBOUNDED_FIELDS = ("time_step_limit",)  # Mamba's dt clamp, (0, inf) by default: no size is read from it


def _reject_non_finite(data, origin: str, path: str = "", depth: int = 0) -> None:
    """NaN and Infinity are not JSON, but Python's reader accepts them; no size or rate may be one."""
    if depth > 64:
        raise UserError(f"{origin}: nested more than 64 levels deep")
    if isinstance(data, float) and not math.isfinite(data):
        raise UserError(f"{origin}: field {path or 'value'!r} is {data!r} (NaN or Infinity); every number must be "
                        "finite")
    if isinstance(data, dict):
        for k, v in data.items():
            if k in UNBOUNDED_FIELDS:
                continue
            _reject_non_finite(v, origin, f"{path}.{k}" if path else str(k), depth + 1)
    elif isinstance(data, list):
        for i, v in enumerate(data):
            _reject_non_finite(v, origin, f"{path}[{i}]", depth + 1)


def check_spec(spec: ModelSpec) -> ModelSpec:
    """Cross-field consistency of a normalised spec, checked once for every reader: what the operators and the
    memory model assume (heads divisible by KV heads, top-k within the experts, positive windows)."""
    o = spec.source or spec.id
    for i, layer in enumerate(spec.layers):
        if min(layer.n_heads, layer.n_kv_heads, layer.head_dim) < 1:
            raise UserError(f"{o}: layer {i} has {layer.n_heads} heads, {layer.n_kv_heads} KV heads of size "
                            f"{layer.head_dim}; each must be at least 1")
        if layer.n_heads % layer.n_kv_heads:
            raise UserError(f"{o}: layer {i} has {layer.n_heads} attention heads, not a multiple of its "
                            f"{layer.n_kv_heads} KV heads")
        if layer.window is not None and layer.window < 1:
            raise UserError(f"{o}: sliding window must be >= 1 token, got {layer.window}")
        if layer.mlp in ("dense", "moe+dense") and layer.intermediate < 1:
            raise UserError(f"{o}: layer {i} has a dense MLP of width {layer.intermediate}")
    moe = spec.moe
    if moe is not None:
        if not 1 <= moe.top_k <= moe.n_experts:
            raise UserError(f"{o}: experts per token ({moe.top_k}) must be between 1 and the number of experts "
                            f"({moe.n_experts})")
        for name in ("n_shared", "shared_intermediate"):
            value = getattr(moe, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SIZE:
                raise UserError(f"{o}: {name} must be an integer from 0 to {MAX_SIZE:,}, got {value!r}")
        if moe.n_shared and moe.shared_intermediate < 1:
            raise UserError(f"{o}: {moe.n_shared} shared expert(s) of width {moe.shared_intermediate}")
    if spec.mla is not None:
        for name, value in asdict(spec.mla).items():
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SIZE:
                raise UserError(f"{o}: MLA field {name} must be an integer from 0 to {MAX_SIZE:,}, got {value!r}")
    mp = spec.max_position
    if mp is not None and (isinstance(mp, bool) or not isinstance(mp, int) or not 1 <= mp <= MAX_POSITIONS):
        raise UserError(f"{o}: max_position_embeddings must be an integer from 1 to {MAX_POSITIONS:,}, got {mp!r}")
    return spec


def _common(cfg: _Config, model_id: str, dtype: str, notes: list[str], layers: list[LayerSpec], **kw) -> ModelSpec:
    return ModelSpec(
        id=model_id,
        model_type=cfg.model_type,
        hidden_size=cfg.int("hidden_size", "n_embd", "d_model"),
        vocab_size=cfg.int("vocab_size"),
        layers=tuple(layers),
        tie_embeddings=cfg.flag("tie_word_embeddings"),
        max_position=cfg.optional_int("max_position_embeddings", "n_positions"),
        checkpoint_dtype=dtype,
        source=cfg.origin,
        notes=tuple(notes),
        **kw,
    )


def _attention_shape(cfg: _Config) -> tuple[int, int, int]:
    hidden = cfg.int("hidden_size", "n_embd", "d_model")
    heads = cfg.int("num_attention_heads", "n_head")
    kv = cfg.int("num_key_value_heads", "num_kv_heads", default=heads)
    if cfg.get("head_dim") is None and hidden % heads:
        raise UserError(f"{cfg.origin}: hidden_size ({hidden}) must be a multiple of num_attention_heads ({heads}) "
                        "when head_dim is not given")
    head_dim = cfg.int("head_dim", default=hidden // heads)
    if heads % kv:
        raise UserError(f"{cfg.origin}: num_attention_heads ({heads}) must be a multiple of "
                        f"num_key_value_heads ({kv})")
    return heads, kv, head_dim


def _windows(cfg: _Config, n_layers: int) -> list[int | None]:
    """Per-layer sliding windows from layer_types, or from the family's fixed pattern."""
    window = cfg.optional_int("sliding_window")
    types = cfg.get("layer_types")
    if types is not None:
        _check_layer_types(cfg, types, n_layers, ("full_attention", "sliding_attention"))
        if window is None and "sliding_attention" in types:
            raise UserError(f"{cfg.origin}: layer_types has sliding_attention layers but no sliding_window")
        return [window if t == "sliding_attention" else None for t in types]
    mt = cfg.model_type
    if mt == "gemma2":  # even layers slide (Gemma2DecoderLayer: is_sliding = not layer_idx % 2)
        return [window if i % 2 == 0 else None for i in range(n_layers)]
    if mt == "gemma3_text":  # every sliding_window_pattern-th layer is global
        pattern = cfg.int("sliding_window_pattern")
        return [None if (i + 1) % pattern == 0 else window for i in range(n_layers)]
    if mt in ("qwen2", "qwen2_moe", "qwen3", "qwen3_moe") and not cfg.flag("use_sliding_window"):
        return [None] * n_layers
    if mt in ("mistral", "mixtral", "phi3", "llama") or mt not in DEFAULTS:
        return [window] * n_layers if window else [None] * n_layers
    return [None] * n_layers


def _check_layer_types(cfg: _Config, types, n_layers: int, known: tuple[str, ...]) -> None:
    if not isinstance(types, list) or len(types) != n_layers:
        size = len(types) if isinstance(types, list) else "no list of"
        raise UserError(f"{cfg.origin}: layer_types has {size} entries for {n_layers} layers")
    unknown = sorted({str(t) for t in types if t not in known})
    if unknown:
        raise UserError(f"{cfg.origin}: layer_types entries {', '.join(unknown)} are not modelled for "
                        f"{cfg.model_type!r} (known: {', '.join(known)})")


def _read_llama_like(cfg: _Config, model_id: str, dtype: str, notes: list[str]) -> ModelSpec:
    """Llama, Mistral, Mixtral, Qwen2/3 (+MoE), Gemma 1-3, Phi-3, OLMo 2, and unknown HF-style decoders."""
    mt = cfg.model_type
    n_layers = cfg.int("num_hidden_layers")
    heads, kv, head_dim = _attention_shape(cfg)
    windows = _windows(cfg, n_layers)
    moe = None
    mlp = ["dense"] * n_layers
    if mt in ("mixtral", "granitemoe"):
        moe = MoESpec(cfg.int("num_local_experts"), cfg.int("num_experts_per_tok"), cfg.int("intermediate_size"))
        mlp = ["moe"] * n_layers
    elif mt == "ernie4_5_moe":
        shared = cfg.optional_int("moe_num_shared_experts", minimum=0) or 0
        moe = MoESpec(cfg.int("moe_num_experts"), cfg.int("moe_k"), cfg.int("moe_intermediate_size"),
                      n_shared=1 if shared else 0, shared_intermediate=shared * cfg.int("moe_intermediate_size"),
                      router_bias=True)  # moe_statics: a score-correction bias per expert
        start, interval = cfg.int("moe_layer_start_index", minimum=0), cfg.int("moe_layer_interval")
        end = cfg.optional_int("moe_layer_end_index", minimum=0)
        end = n_layers - 1 if end is None else end
        mlp = ["moe" if start <= i <= end and (i - start) % interval == 0 else "dense" for i in range(n_layers)]
    elif mt == "glm4_moe":  # DeepSeek-V3's routing (a score-correction bias per expert) without MLA
        moe = MoESpec(cfg.int("n_routed_experts"), cfg.int("num_experts_per_tok"), cfg.int("moe_intermediate_size"),
                      n_shared=cfg.optional_int("n_shared_experts", minimum=0) or 0,
                      shared_intermediate=cfg.int("moe_intermediate_size"), router_bias=True)
        first_dense = cfg.int("first_k_dense_replace", minimum=0)
        mlp = ["moe" if i >= first_dense else "dense" for i in range(n_layers)]
        if cfg.get("num_nextn_predict_layers"):
            notes.append("multi-token-prediction (MTP) layer not counted: it is used only for speculative decoding "
                         "(--mtp)")
    elif mt == "hunyuan_v1_moe":  # every layer: routed experts beside one shared MLP, all of intermediate_size
        if cfg.flag("use_cla"):
            raise UserError(f"{cfg.origin}: cross-layer attention (use_cla) is not modelled yet")
        size = cfg.int("intermediate_size")
        moe = MoESpec(_uniform(cfg, "num_experts"), _uniform(cfg, "moe_topk"), size, n_shared=1,
                      shared_intermediate=size)
        mlp = ["moe"] * n_layers
    elif mt in ("qwen3_moe", "qwen2_moe"):
        shared = cfg.optional_int("shared_expert_intermediate_size", minimum=0) or 0
        moe = MoESpec(cfg.int("num_experts"), cfg.int("num_experts_per_tok"), cfg.int("moe_intermediate_size"),
                      n_shared=1 if shared else 0, shared_intermediate=shared)
        step = cfg.int("decoder_sparse_step")
        dense_only = cfg.get("mlp_only_layers", default=[])
        if not isinstance(dense_only, list) or not all(isinstance(i, int) for i in dense_only):
            raise UserError(f"{cfg.origin}: field 'mlp_only_layers' must be a list of layer indices")
        dense_only = set(dense_only)
        mlp = ["moe" if (i + 1) % step == 0 and i not in dense_only else "dense" for i in range(n_layers)]
    intermediate = cfg.int("intermediate_size")
    layers = [LayerSpec("gqa", heads, kv, head_dim, w, mlp=m, intermediate=intermediate)
              for w, m in zip(windows, mlp)]
    kw: dict = {}
    if mt == "glm4_moe":
        kw["mtp_layers"] = cfg.optional_int("num_nextn_predict_layers", minimum=0) or 0
    if mt in ("gemma2", "gemma3_text"):
        kw["norms_per_layer"] = 4
    if mt in ("qwen3", "qwen3_moe", "gemma3_text", "exaone4", "hunyuan_v1_moe") or mt in ("glm4_moe", "cohere2") and \
            cfg.flag("use_qk_norm"):
        kw["qk_norm"] = "head"
    if mt in ("olmo2", "olmo3"):
        kw["qk_norm"] = "full"
    if mt == "cohere2":
        kw["norms_per_layer"] = 1  # one LayerNorm (weight only) feeds attention and MLP in parallel
    if mt in ("qwen2", "qwen2_moe"):
        kw["attn_bias"] = True
    elif cfg.flag("attention_bias"):
        kw["attn_bias"] = kw["attn_out_bias"] = True
    if cfg.flag("mlp_bias"):
        kw["mlp_bias"] = True
    return _common(cfg, model_id, dtype, notes, layers, moe=moe, **kw)


def _uniform(cfg: _Config, key: str) -> int:
    """A per-model integer that a config may also give per layer (a list): all layers alike, or refused."""
    value = cfg.get(key)
    if isinstance(value, list):
        if not value or len(set(map(str, value))) != 1:
            raise UserError(f"{cfg.origin}: field {key!r} differs between layers ({value!r:.80}); per-layer values "
                            "are not modelled yet")
        return _Config({key: value[0]}, cfg.model_type, cfg.origin).int(key)
    return cfg.int(key)


def _read_deepseek(cfg: _Config, model_id: str, dtype: str, notes: list[str]) -> ModelSpec:
    n_layers = cfg.int("num_hidden_layers")
    heads = cfg.int("num_attention_heads")
    sparse = cfg.model_type == "deepseek_v32"
    mla = MLASpec(cfg.optional_int("q_lora_rank", minimum=0) or 0, cfg.int("kv_lora_rank"), cfg.int("qk_nope_head_dim"),
                  cfg.int("qk_rope_head_dim"), cfg.int("v_head_dim"),
                  *((cfg.int("index_topk"), cfg.int("index_head_dim"), cfg.int("index_n_heads")) if sparse else ()))
    first_dense, freq = cfg.int("first_k_dense_replace", minimum=0), cfg.int("moe_layer_freq")
    moe = MoESpec(cfg.int("n_routed_experts"), cfg.int("num_experts_per_tok"), cfg.int("moe_intermediate_size"),
                  n_shared=cfg.optional_int("n_shared_experts", minimum=0) or 0,
                  shared_intermediate=cfg.int("moe_intermediate_size"),
                  router_bias=cfg.get("topk_method") == "noaux_tc")  # e_score_correction_bias
    intermediate = cfg.int("intermediate_size")
    layers = [LayerSpec("mla", heads, heads, mla.qk_nope_head_dim + mla.qk_rope_head_dim,
                        mlp="moe" if i >= first_dense and i % freq == 0 else "dense", intermediate=intermediate,
                        reads=mla.index_topk or None)
              for i in range(n_layers)]
    if cfg.get("num_nextn_predict_layers"):
        notes.append("multi-token-prediction (MTP) module not counted: it is used only for speculative decoding "
                     "(--mtp)")
    return _common(cfg, model_id, dtype, notes, layers, moe=moe, mla=mla,
                   mtp_layers=cfg.optional_int("num_nextn_predict_layers", minimum=0) or 0)


def _read_gpt_oss(cfg: _Config, model_id: str, dtype: str, notes: list[str]) -> ModelSpec:
    n_layers = cfg.int("num_hidden_layers")
    heads, kv, head_dim = _attention_shape(cfg)
    moe = MoESpec(cfg.int("num_local_experts"), cfg.int("num_experts_per_tok", "experts_per_token"),
                  cfg.int("intermediate_size"), router_bias=True, expert_bias=True)
    layers = [LayerSpec("gqa", heads, kv, head_dim, w, mlp="moe") for w in _windows(cfg, n_layers)]
    return _common(cfg, model_id, dtype, notes, layers, moe=moe, attn_bias=True, attn_out_bias=True,
                   attention_sinks=True)


def _read_gemma4(cfg: _Config, model_id: str, dtype: str, notes: list[str]) -> ModelSpec:
    n_layers = cfg.int("num_hidden_layers")
    heads, kv, head_dim = _attention_shape(cfg)
    global_kv = cfg.int("num_global_key_value_heads", default=kv)
    global_dim = cfg.int("global_head_dim", default=head_dim)
    k_eq_v = cfg.flag("attention_k_eq_v")
    moe = None
    mlp = "dense"
    if cfg.flag("enable_moe_block"):
        moe = MoESpec(cfg.int("num_experts"), cfg.int("top_k_experts"), cfg.int("moe_intermediate_size"))
        mlp = "moe+dense"
    intermediate = cfg.int("intermediate_size")
    layers = []
    for w in _windows(cfg, n_layers):
        if w is None:  # full attention: the "global" KV heads and head size, keys shared as values
            layers.append(LayerSpec("gqa", heads, global_kv, global_dim, None, k_eq_v=k_eq_v, mlp=mlp,
                                    intermediate=intermediate))
        else:
            layers.append(LayerSpec("gqa", heads, kv, head_dim, w, mlp=mlp, intermediate=intermediate))
    notes.append("Gemma 4 KV layout read as: sliding layers num_key_value_heads x head_dim (K and V); full layers"
                 " num_global_key_value_heads x global_head_dim with attention_k_eq_v (one tensor)")
    return _common(cfg, model_id, dtype, notes, layers, moe=moe, norms_per_layer=4, qk_norm="head")


def _read_qwen3_5(cfg: _Config, model_id: str, dtype: str, notes: list[str]) -> ModelSpec:
    n_layers = cfg.int("num_hidden_layers")
    heads, kv, head_dim = _attention_shape(cfg)
    lin = LinearAttentionSpec(cfg.int("linear_num_key_heads"), cfg.int("linear_num_value_heads"),
                              cfg.int("linear_key_head_dim"), cfg.int("linear_value_head_dim"),
                              cfg.int("linear_conv_kernel_dim"))
    types = cfg.get("layer_types")
    if types is None:
        interval = cfg.int("full_attention_interval")
        types = ["full_attention" if (i + 1) % interval == 0 else "linear_attention" for i in range(n_layers)]
    _check_layer_types(cfg, types, n_layers, ("full_attention", "linear_attention"))
    intermediate = cfg.int("intermediate_size")
    gate = cfg.flag("attn_output_gate")
    moe, mlp = None, ["dense"] * n_layers
    if cfg.get("num_experts"):  # Qwen3-Next: every layer routed (decoder_sparse_step), a gated shared expert
        shared = cfg.optional_int("shared_expert_intermediate_size", minimum=0) or 0
        moe = MoESpec(cfg.int("num_experts"), cfg.int("num_experts_per_tok"), cfg.int("moe_intermediate_size"),
                      n_shared=1 if shared else 0, shared_intermediate=shared)
        step, dense_only = cfg.int("decoder_sparse_step"), set(cfg.get("mlp_only_layers", default=[]) or [])
        mlp = ["moe" if (i + 1) % step == 0 and i not in dense_only else "dense" for i in range(n_layers)]
    layers = [LayerSpec("linear" if t == "linear_attention" else "gqa", heads, kv, head_dim, q_gate=gate,
                        intermediate=intermediate, mlp=m) for t, m in zip(types, mlp)]
    mtp = cfg.optional_int("mtp_num_hidden_layers", minimum=0) or cfg.optional_int("num_nextn_predict_layers",
                                                                                  minimum=0) or 0
    if mtp:
        notes.append("multi-token-prediction (MTP) layer not counted: it is used only for speculative decoding "
                     "(--mtp)")
    return _common(cfg, model_id, dtype, notes, layers, linear_attention=lin, qk_norm="head", moe=moe,
                   mtp_layers=mtp)


def _read_llama4(cfg: _Config, model_id: str, dtype: str, notes: list[str]) -> ModelSpec:
    """Llama 4: routed experts (top-1 of 16 or 128) beside a shared expert in the MoE layers, a wider dense MLP in
    the others, and 3 of 4 layers attending within chunks of attention_chunk_size tokens. A token in a chunked
    layer reads the keys of its own chunk only, 1 to C of them, (C + 1) / 2 on average: its reads are modelled as
    a window of C / 2 (exact on average over every C positions, never more than the layer's true reads at depths
    under C) and its cache as the chunk it keeps. Its q/k norms are parameter-free L2 norms."""
    n_layers = cfg.int("num_hidden_layers")
    heads, kv, head_dim = _attention_shape(cfg)
    chunk = cfg.int("attention_chunk_size")
    types = cfg.get("layer_types")
    if types is None:
        types = ["full_attention" if (i + 1) % 4 == 0 else "chunked_attention" for i in range(n_layers)]
    _check_layer_types(cfg, types, n_layers, ("full_attention", "chunked_attention"))
    moe_layers = cfg.get("moe_layers")
    if moe_layers is None:
        step = cfg.int("interleave_moe_layer_step")
        moe_layers = [i for i in range(n_layers) if (i + 1) % step == 0]
    if not isinstance(moe_layers, list) or not all(isinstance(i, int) for i in moe_layers):
        raise UserError(f"{cfg.origin}: field 'moe_layers' must be a list of layer indices")
    expert = cfg.int("intermediate_size")
    moe = MoESpec(cfg.int("num_local_experts"), cfg.int("num_experts_per_tok"), expert, n_shared=1,
                  shared_intermediate=expert)
    dense = cfg.int("intermediate_size_mlp")
    layers = [LayerSpec("gqa", heads, kv, head_dim, window=max(1, chunk // 2) if t == "chunked_attention" else None,
                        held=chunk if t == "chunked_attention" else None,
                        mlp="moe" if i in set(moe_layers) else "dense", intermediate=dense)
              for i, t in enumerate(types)]
    notes.append(f"chunked attention ({chunk} tokens) read as a {chunk // 2}-token window, its mean over a chunk")
    return _common(cfg, model_id, dtype, notes, layers, moe=moe)


def _mamba(cfg: _Config, prefix: str = "") -> MambaSpec:
    if prefix:  # Granite 4.0 and Falcon-H1: mamba_n_heads, mamba_d_head, ...
        return MambaSpec(cfg.int("mamba_n_heads"), cfg.int("mamba_d_head"), cfg.int("mamba_d_state"),
                         cfg.int("mamba_n_groups"), cfg.int("mamba_d_conv"), cfg.flag("mamba_conv_bias", True),
                         gated_norm=cfg.flag("mamba_rms_norm", True))
    return MambaSpec(cfg.int("num_heads"), cfg.int("head_dim"), cfg.int("state_size"), cfg.int("n_groups"),
                     cfg.int("conv_kernel"), cfg.flag("use_conv_bias", True))


def _read_mamba2(cfg: _Config, model_id: str, dtype: str, notes: list[str]) -> ModelSpec:
    """Mamba-2: every block one norm and one mixer (no MLP, no KV cache: a fixed state per sequence)."""
    mb = _mamba(cfg)
    if mb.d_inner != cfg.int("expand") * cfg.int("hidden_size"):
        raise UserError(f"{cfg.origin}: num_heads x head_dim ({mb.d_inner}) must equal expand x hidden_size")
    layers = [LayerSpec("linear", mb.n_heads, mb.n_heads, mb.head_dim, mlp="none")
              for _ in range(cfg.int("num_hidden_layers"))]
    return _common(cfg, model_id, dtype, notes, layers, mamba=mb, norms_per_layer=1)


def _read_mamba(cfg: _Config, model_id: str, dtype: str, notes: list[str]) -> ModelSpec:
    """Mamba (1): every block one norm and one selective-scan mixer (in_proj to x and z, a causal convolution,
    x_proj to dt, B and C, dt_proj, out_proj); no MLP and no KV cache, a fixed state per sequence."""
    h = cfg.int("hidden_size")
    d = cfg.int("intermediate_size", default=cfg.int("expand") * h)
    rank = cfg.get("time_step_rank")
    rank = math.ceil(h / 16) if rank == "auto" else cfg.int("time_step_rank")
    mb = MambaSpec(d, 1, cfg.int("state_size"), 0, cfg.int("conv_kernel"), cfg.flag("use_conv_bias", True),
                   gated_norm=False, dt_rank=rank, proj_bias=cfg.flag("use_bias"))
    layers = [LayerSpec("linear", d, d, 1, mlp="none") for _ in range(cfg.int("num_hidden_layers"))]
    return _common(cfg, model_id, dtype, notes, layers, mamba=mb, norms_per_layer=1)


def _read_minimax(cfg: _Config, model_id: str, dtype: str, notes: list[str]) -> ModelSpec:
    """MiniMax-Text-01 (transformers' minimax): lightning-attention layers (linear attention in blocks of
    block_size, a head_dim x head_dim state per head) and softmax-attention layers as layer_types says, each
    followed by Mixtral-style routed experts."""
    n_layers = cfg.int("num_hidden_layers")
    heads, kv, head_dim = _attention_shape(cfg)
    types = cfg.get("layer_types")
    _check_layer_types(cfg, types, n_layers, ("full_attention", "linear_attention"))
    lin = LinearAttentionSpec(heads, heads, head_dim, head_dim, 0, kind="lightning", chunk=cfg.int("block_size"))
    moe = MoESpec(cfg.int("num_local_experts"), cfg.int("num_experts_per_tok"), cfg.int("intermediate_size"))
    layers = [LayerSpec("linear" if t == "linear_attention" else "gqa", heads, kv, head_dim, mlp="moe",
                        intermediate=cfg.int("intermediate_size")) for t in types]
    return _common(cfg, model_id, dtype, notes, layers, linear_attention=lin, moe=moe)


def _read_granite_hybrid(cfg: _Config, model_id: str, dtype: str, notes: list[str]) -> ModelSpec:
    """Granite 4.0 hybrids: Mamba-2 mixers and attention layers (layer_types), each followed by routed experts
    with a shared MLP (or by the shared MLP alone when there are no experts)."""
    n_layers = cfg.int("num_hidden_layers")
    heads, kv, head_dim = _attention_shape(cfg)
    types = cfg.get("layer_types")
    known = ("mamba", "attention", "linear_attention", "full_attention")
    _check_layer_types(cfg, types, n_layers, known)
    shared = cfg.optional_int("shared_intermediate_size", minimum=0) or 0
    experts = cfg.optional_int("num_local_experts", minimum=0) or 0
    moe = MoESpec(experts, cfg.int("num_experts_per_tok"), cfg.int("intermediate_size"), n_shared=1 if shared else 0,
                  shared_intermediate=shared) if experts else None
    layers = [LayerSpec("linear" if t in ("mamba", "linear_attention") else "gqa", heads, kv, head_dim,
                        mlp="moe" if moe else "dense", intermediate=shared) for t in types]
    return _common(cfg, model_id, dtype, notes, layers, mamba=_mamba(cfg, "mamba_"), moe=moe,
                   attn_bias=cfg.flag("attention_bias"), attn_out_bias=cfg.flag("attention_bias"))


def _read_falcon_h1(cfg: _Config, model_id: str, dtype: str, notes: list[str]) -> ModelSpec:
    """Falcon-H1: every layer runs attention and a Mamba-2 mixer side by side on the same input, then an MLP; it
    keeps both a KV cache and a fixed SSM state per sequence. The muP multipliers change no weight."""
    heads, kv, head_dim = _attention_shape(cfg)
    mb = _mamba(cfg, "mamba_")
    if cfg.get("mamba_d_ssm") is not None and cfg.int("mamba_d_ssm") != mb.d_inner:
        raise UserError(f"{cfg.origin}: mamba_d_ssm ({cfg.int('mamba_d_ssm')}) must equal mamba_n_heads x "
                        f"mamba_d_head ({mb.d_inner})")
    layers = [LayerSpec("gqa", heads, kv, head_dim, mamba=True, intermediate=cfg.int("intermediate_size"))
              for _ in range(cfg.int("num_hidden_layers"))]
    return _common(cfg, model_id, dtype, notes, layers, mamba=mb, attn_bias=cfg.flag("attention_bias"),
                   attn_out_bias=cfg.flag("attention_bias"), mlp_bias=cfg.flag("mlp_bias"))


def _read_jamba(cfg: _Config, model_id: str, dtype: str, notes: list[str]) -> ModelSpec:
    """Jamba: Mamba-1 mixers with one attention layer every attn_layer_period, routed experts every
    expert_layer_period (a dense MLP elsewhere)."""
    heads, kv, head_dim = _attention_shape(cfg)
    n_layers, h = cfg.int("num_hidden_layers"), cfg.int("hidden_size")
    d_inner = cfg.int("mamba_expand") * h
    mb = MambaSpec(d_inner, 1, cfg.int("mamba_d_state"), 0, cfg.int("mamba_d_conv"), cfg.flag("mamba_conv_bias", True),
                   gated_norm=False, dt_rank=cfg.int("mamba_dt_rank"), bc_norms=True)
    a_period, a_offset = cfg.int("attn_layer_period"), cfg.int("attn_layer_offset", minimum=0)
    e_period, e_offset = cfg.int("expert_layer_period"), cfg.int("expert_layer_offset", minimum=0)
    moe = MoESpec(cfg.int("num_experts"), cfg.int("num_experts_per_tok"), cfg.int("intermediate_size"))
    layers = [LayerSpec("gqa" if i % a_period == a_offset else "linear", heads, kv, head_dim,
                        mlp="moe" if i % e_period == e_offset else "dense", intermediate=cfg.int("intermediate_size"))
              for i in range(n_layers)]
    return _common(cfg, model_id, dtype, notes, layers, mamba=mb, moe=moe)


def _read_gpt2(cfg: _Config, model_id: str, dtype: str, notes: list[str]) -> ModelSpec:
    n_layers = cfg.int("n_layer", "num_hidden_layers")
    heads, _, head_dim = _attention_shape(cfg)
    hidden = cfg.int("n_embd", "hidden_size")
    inner = cfg.int("n_inner", default=4 * hidden)
    layers = [LayerSpec("gqa", heads, heads, head_dim, intermediate=inner) for _ in range(n_layers)]
    gptj = cfg.model_type == "gptj"
    return _common(
        cfg, model_id, dtype, notes, layers, mlp_gated=False, norm="layer", norms_per_layer=1 if gptj else 2,
        attn_bias=not gptj, attn_out_bias=not gptj, mlp_bias=True, lm_head_bias=gptj,
        learned_positions=0 if gptj else cfg.int("n_positions"),
    )


def _read_opt(cfg: _Config, model_id: str, dtype: str, notes: list[str]) -> ModelSpec:
    n_layers = cfg.int("num_hidden_layers")
    heads, _, head_dim = _attention_shape(cfg)
    hidden = cfg.int("hidden_size")
    bias = cfg.flag("enable_bias")
    layers = [LayerSpec("gqa", heads, heads, head_dim, intermediate=cfg.int("ffn_dim")) for _ in range(n_layers)]
    proj = cfg.int("word_embed_proj_dim", default=hidden)
    return _common(cfg, model_id, dtype, notes, layers, mlp_gated=False, norm="layer", attn_bias=bias,
                   attn_out_bias=bias, mlp_bias=bias, learned_positions=cfg.int("max_position_embeddings") + 2,
                   embed_proj_dim=proj if proj != hidden else 0)


def _read_falcon(cfg: _Config, model_id: str, dtype: str, notes: list[str]) -> ModelSpec:
    n_layers = cfg.int("num_hidden_layers")
    hidden = cfg.int("hidden_size")
    heads = cfg.int("num_attention_heads")
    if cfg.flag("new_decoder_architecture"):
        kv = cfg.int("num_kv_heads", default=heads)
        norms = cfg.int("num_ln_in_parallel_attn", default=2)
    else:
        kv = 1 if cfg.flag("multi_query") else heads
        norms = 1 if cfg.flag("parallel_attn") else 2
    inter = cfg.int("ffn_hidden_size", default=4 * hidden)
    if hidden % heads:  # FalconAttention refuses it too
        raise UserError(f"{cfg.origin}: hidden_size ({hidden}) must be a multiple of num_attention_heads ({heads})")
    layers = [LayerSpec("gqa", heads, kv, hidden // heads, intermediate=inter) for _ in range(n_layers)]
    bias = cfg.flag("bias")
    return _common(cfg, model_id, dtype, notes, layers, mlp_gated=False, norm="layer", norms_per_layer=norms,
                   attn_bias=bias, attn_out_bias=bias, mlp_bias=bias)


_READERS = {
    "deepseek_v2": _read_deepseek,
    "deepseek_v3": _read_deepseek,
    "deepseek_v32": _read_deepseek,
    "gpt_oss": _read_gpt_oss,
    "gemma4_text": _read_gemma4,
    "qwen3_5_text": _read_qwen3_5,
    "qwen3_next": _read_qwen3_5,
    "llama4_text": _read_llama4,
    "mamba2": _read_mamba2,
    "mamba": _read_mamba,
    "minimax": _read_minimax,
    "granitemoehybrid": _read_granite_hybrid,
    "falcon_h1": _read_falcon_h1,
    "jamba": _read_jamba,
    "gpt2": _read_gpt2,
    "gptj": _read_gpt2,
    "opt": _read_opt,
    "falcon": _read_falcon,
}


# ---------------------------------------------------------------------------------------------------------------
# Finding a model


@cache
def _catalog_aliases() -> dict[str, str]:
    names = {mid: mid for mid in catalog.model_ids()}
    for mid, entry in catalog.models_index().items():
        if entry.get("hf_repo"):
            names[entry["hf_repo"].lower()] = mid
    return names


def load_model(name: str | Path | ModelSpec) -> ModelSpec:
    """A catalog id (llama-3.1-70b), a Hugging Face repo id of a catalog model (meta-llama/Llama-3.1-70B), or a
    path to a config.json or to a directory holding one. Nothing is downloaded."""
    if isinstance(name, ModelSpec):
        return name
    text = str(name).strip()
    path = Path(text).expanduser()
    if path.is_dir():
        path = path / "config.json"
        if not path.is_file():
            raise UserError(f"{text!r} is a directory without a config.json")
        return _from_file(path, Path(text).resolve().name)
    if path.is_file() and path.suffix.lower() == ".gguf":
        from .gguf_model import read_gguf

        return read_gguf(path)
    if path.is_file() and (path.suffix.lower() == ".safetensors" or path.name.endswith(".safetensors.index.json")):
        from .safetensors_model import read_safetensors

        return read_safetensors(path)
    if path.is_file():
        return _from_file(path, path.parent.resolve().name if path.name == "config.json" else path.stem)
    if text.endswith(".json") or "/" in text and (text.startswith((".", "/", "~")) or path.parent.exists() and
                                                  path.suffix):
        raise UserError(f"model file {text!r} does not exist")
    names = _catalog_aliases()
    key = text.lower()
    mid = names.get(key) or names.get(catalog.normalize_name(text))
    if mid is None and "/" in text:
        cached = _hub_cache_config(text)
        if cached is not None:
            return _from_file(cached, text.split("/")[-1], origin=f"{text} (local Hugging Face cache: {cached})")
        base = _base_variant(key, names)  # an instruct / chat tune has its base model's architecture
        if base is not None:
            spec = _catalog_model(base)
            return replace(spec, notes=spec.notes + (f"{text}: the architecture of {base} (the same shapes, other weights)",))
    if mid is None:
        raise UserError(f"unknown model {text!r}{closest(catalog.normalize_name(text), names)}; "
                        "`llm-roofline models list` shows the catalog, or pass a path to a config.json")
    return _catalog_model(mid)


TUNE_SUFFIXES = ("-instruct", "-chat", "-it", "-base", "-hf")
# Published checkpoints whose config.json has the shapes of a catalog model (post-trained from it or released as
# a variant of it), by their model cards
SAME_ARCHITECTURE = {
    "deepseek-ai/deepseek-r1": "deepseek-v3", "deepseek-ai/deepseek-r1-0528": "deepseek-v3",
    "deepseek-ai/deepseek-v3-0324": "deepseek-v3", "deepseek-ai/deepseek-v3-base": "deepseek-v3",
    "deepseek-ai/deepseek-v3.1": "deepseek-v3",
    "qwen/qwen2.5-coder-7b": "qwen2.5-7b", "qwen/qwen2.5-coder-14b": "qwen2.5-14b",
    "qwen/qwen2.5-coder-32b": "qwen2.5-32b",
}


def _base_variant(repo: str, names: dict[str, str]) -> str | None:
    """meta-llama/Llama-3.1-8B-Instruct -> the catalog's meta-llama/Llama-3.1-8B (same shapes, other weights),
    and the other way round; the checkpoints of SAME_ARCHITECTURE."""
    stems = [repo]
    for suffix in TUNE_SUFFIXES:
        if repo.endswith(suffix):
            stems.append(repo[: -len(suffix)])
    for stem in stems:
        for candidate in (stem, *(stem + s for s in TUNE_SUFFIXES)):
            if candidate in SAME_ARCHITECTURE:
                return SAME_ARCHITECTURE[candidate]
            if candidate != repo and candidate in names:
                return names[candidate]
    return None


def _hub_cache_config(repo: str) -> Path | None:
    """config.json of a model already in the local Hugging Face cache (HF_HUB_CACHE, HF_HOME/hub or
    ~/.cache/huggingface/hub; the snapshot refs/main points at, else the newest). Nothing is downloaded."""
    import os

    roots = [os.environ.get("HF_HUB_CACHE"), os.environ.get("HF_HOME") and Path(os.environ["HF_HOME"]) / "hub",
             Path.home() / ".cache" / "huggingface" / "hub"]
    folder = "models--" + repo.strip("/").replace("/", "--")
    for root in (Path(r) for r in roots if r):
        snapshots = root / folder / "snapshots"
        if not snapshots.is_dir():
            continue
        ref = root / folder / "refs" / "main"
        revision = ref.read_text().strip() if ref.is_file() else None
        candidates = [snapshots / revision] if revision else []
        candidates += sorted(snapshots.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
        for snap in candidates:
            if (snap / "config.json").is_file():
                return snap / "config.json"
    return None


@cache
def _catalog_model(mid: str) -> ModelSpec:
    """Catalog specs are immutable, so each is read once per process."""
    spec = _from_file(catalog.MODELS_DIR / f"{mid}.json", mid, origin=f"catalog:{mid}")
    repo = catalog.models_index().get(mid, {}).get("hf_repo")
    return replace(spec, aliases=(repo,) if repo else ())


MAX_CONFIG_BYTES = 16 << 20


def _from_file(path: Path, model_id: str, origin: str | None = None) -> ModelSpec:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if size > MAX_CONFIG_BYTES:
        raise UserError(f"{path}: {size:,} bytes is too large for a config.json (at most {MAX_CONFIG_BYTES:,})")
    try:
        raw = json.loads(path.read_text())  # NaN / Infinity parse; spec_from_config names the field they are in
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise UserError(f"{path}: not a readable JSON config ({str(exc).splitlines()[0] if str(exc) else exc!r})"
                        ) from None
    return spec_from_config(raw, model_id, origin or str(path))


# ---------------------------------------------------------------------------------------------------------------
# The weights, tensor group by tensor group


@dataclass(frozen=True)
class WeightGroup:
    """Parameters one operator reads. kind decides the bits they are stored in (see formats.py)."""

    op: str  # operator that reads them: attn_qkv, attn_out, mlp, moe_router, moe_experts, ...
    params: int
    kind: str  # "linear", "expert", "embedding", "lm_head", "norm"
    per_expert: int = 0  # moe_experts only
    # (out, in) of each weight matrix (of one expert for moe_experts), where the layout is known: kernels stream
    # a tall matrix at a different rate from a wide one of the same size, and a measured profile knows both
    shapes: tuple[tuple[int, int], ...] = ()


def layer_weights(spec: ModelSpec, layer: LayerSpec) -> list[WeightGroup]:
    h = spec.hidden_size
    norm_width = 2 if spec.norm == "layer" else 1
    norms = spec.norms_per_layer * h * norm_width
    groups: list[WeightGroup] = []
    if layer.attention == "mla":
        m = spec.mla
        q_dim = layer.n_heads * (m.qk_nope_head_dim + m.qk_rope_head_dim)
        q = h * m.q_lora_rank + m.q_lora_rank * q_dim if m.q_lora_rank else h * q_dim
        kv_a = h * (m.kv_lora_rank + m.qk_rope_head_dim)
        kv_b = m.kv_lora_rank * layer.n_heads * (m.qk_nope_head_dim + m.v_head_dim)
        q_shapes = ((m.q_lora_rank, h), (q_dim, m.q_lora_rank)) if m.q_lora_rank else ((q_dim, h),)
        kv_shapes = ((m.kv_lora_rank + m.qk_rope_head_dim, h),
                     (layer.n_heads * (m.qk_nope_head_dim + m.v_head_dim), m.kv_lora_rank))
        if m.index_topk:  # the indexer: its queries from the q latent, one key and one weight per head per token
            index_q = m.index_n_heads * m.index_head_dim
            q += (m.q_lora_rank or h) * index_q + h * m.index_head_dim + h * m.index_n_heads
            q_shapes += ((index_q, m.q_lora_rank or h), (m.index_head_dim, h), (m.index_n_heads, h))
            norms += 2 * m.index_head_dim  # its key LayerNorm
        groups.append(WeightGroup("attn_qkv", q + kv_a + kv_b, "linear", shapes=q_shapes + kv_shapes))
        groups.append(WeightGroup("attn_out", layer.n_heads * m.v_head_dim * h, "linear",
                                  shapes=((h, layer.n_heads * m.v_head_dim),)))
        norms += m.q_lora_rank + m.kv_lora_rank
    elif layer.attention == "linear" and spec.mamba is not None:
        mixer, extra = _mamba_weights(spec.mamba, h, "attn_qkv", "attn_out")
        groups += mixer
        norms += extra
    elif layer.attention == "linear" and spec.linear_attention.kind == "lightning":
        la = spec.linear_attention  # qkv_proj and output_gate on the input, out_proj, one norm over the heads
        width = la.n_value_heads * la.value_head_dim
        groups.append(WeightGroup("attn_qkv", h * 4 * width, "linear", shapes=((3 * width, h), (width, h))))
        groups.append(WeightGroup("attn_out", width * h, "linear", shapes=((h, width),)))
        norms += width
    elif layer.attention == "linear":
        la = spec.linear_attention
        key_dim, value_dim = la.n_key_heads * la.key_head_dim, la.n_value_heads * la.value_head_dim
        # in_proj_qkvz and in_proj_ba (the per-head decay and beta gates), then out_proj
        groups.append(WeightGroup("attn_qkv", h * (2 * key_dim + 2 * value_dim) + h * 2 * la.n_value_heads, "linear",
                                  shapes=((2 * key_dim + 2 * value_dim, h), (2 * la.n_value_heads, h))))
        groups.append(WeightGroup("attn_out", value_dim * h, "linear", shapes=((h, value_dim),)))
        norms += (2 * key_dim + value_dim) * la.conv_kernel + 2 * la.n_value_heads + la.value_head_dim
    else:
        q_width = layer.n_heads * layer.head_dim * (2 if layer.q_gate else 1)
        kv_width = layer.n_kv_heads * layer.head_dim * (1 if layer.k_eq_v else 2)
        bias = (q_width + kv_width) if spec.attn_bias else 0
        kv_shapes = ((layer.n_kv_heads * layer.head_dim, h),) * (1 if layer.k_eq_v else 2)
        groups.append(WeightGroup("attn_qkv", h * (q_width + kv_width) + bias, "linear",
                                  shapes=((q_width, h), *kv_shapes)))
        out_bias = h if spec.attn_out_bias else 0
        groups.append(WeightGroup("attn_out", layer.n_heads * layer.head_dim * h + out_bias, "linear",
                                  shapes=((h, layer.n_heads * layer.head_dim),)))
        if spec.qk_norm == "head":
            norms += 2 * layer.head_dim
        elif spec.qk_norm == "full":
            norms += (layer.n_heads + layer.n_kv_heads) * layer.head_dim
        if spec.attention_sinks:
            norms += layer.n_heads
    if layer.mamba:  # Falcon-H1: a Mamba-2 mixer beside the attention
        mixer, extra = _mamba_weights(spec.mamba, h, "mamba_in", "mamba_out")
        groups += mixer
        norms += extra
    if layer.mlp in ("dense", "moe+dense"):
        mats = 3 if spec.mlp_gated else 2
        bias = ((2 if spec.mlp_gated else 1) * layer.intermediate + h) if spec.mlp_bias else 0
        up = ((layer.intermediate, h),) * (mats - 1)
        groups.append(WeightGroup("mlp", mats * h * layer.intermediate + bias, "linear",
                                  shapes=(*up, (h, layer.intermediate))))
    if layer.mlp in ("moe", "moe+dense"):
        moe = spec.moe
        groups.append(WeightGroup("moe_router", h * moe.n_experts + (moe.n_experts if moe.router_bias else 0),
                                  "linear", shapes=((moe.n_experts, h),)))
        per_expert = 3 * h * moe.expert_intermediate + ((2 * moe.expert_intermediate + h) if moe.expert_bias else 0)
        i_e = moe.expert_intermediate
        groups.append(WeightGroup("moe_experts", moe.n_experts * per_expert, "expert", per_expert,
                                  shapes=((i_e, h), (i_e, h), (h, i_e))))
        if moe.n_shared:
            i_s = moe.n_shared * moe.shared_intermediate
            groups.append(WeightGroup("moe_shared", moe.n_shared * 3 * h * moe.shared_intermediate, "linear",
                                      shapes=((i_s, h), (i_s, h), (h, i_s))))
    groups.append(WeightGroup("norms", norms, "norm"))
    return groups


def _mamba_weights(mb: MambaSpec, h: int, in_name: str, out_name: str) -> tuple[list[WeightGroup], int]:
    """A Mamba mixer's projections, and its small tensors (convolution, dt bias, A, D, gated norm)."""
    if mb.dt_rank:  # Mamba-1: in_proj (x, z), x_proj (dt, B, C), dt_proj; A is d_inner x d_state
        d, r, n = mb.d_inner, mb.dt_rank, mb.d_state
        mats = ((2 * d, h), (r + 2 * n, d), (d, r))
        groups = [WeightGroup(in_name, sum(a * b for a, b in mats), "linear", shapes=mats),
                  WeightGroup(out_name, d * h, "linear", shapes=((h, d),))]
        small = d * (mb.conv_kernel + (1 if mb.conv_bias else 0)) + d + d * n + d  # conv, dt bias, A, D
        return groups, small + ((r + 2 * n) if mb.bc_norms else 0) + ((2 * d + h) if mb.proj_bias else 0)
    width = 2 * mb.d_inner + 2 * mb.n_groups * mb.d_state + mb.n_heads  # z, x, B, C and dt
    groups = [WeightGroup(in_name, h * width, "linear", shapes=((width, h),)),
              WeightGroup(out_name, mb.d_inner * h, "linear", shapes=((h, mb.d_inner),))]
    small = mb.conv_dim * (mb.conv_kernel + (1 if mb.conv_bias else 0)) + 3 * mb.n_heads
    return groups, small + (mb.d_inner if mb.gated_norm else 0)


def params_by_kind(spec: ModelSpec) -> dict[str, int]:
    """Parameters per kind of tensor (linear, expert, embedding, lm_head, norm): what a file's bytes of each kind
    are divided by to give that kind's bits per weight. A tied head stores nothing of its own."""
    out = {"linear": 0, "expert": 0, "embedding": 0, "lm_head": 0, "norm": 0}
    for layer, n in spec.layer_kinds:
        for g in layer_weights(spec, layer):
            out[g.kind] += n * g.params
    for g in global_weights(spec):
        out[g.kind] += g.params
    if spec.tie_embeddings:
        out["lm_head"] = 0
    return out


def global_weights(spec: ModelSpec) -> list[WeightGroup]:
    h, v = spec.hidden_size, spec.vocab_size
    embed_dim = spec.embed_proj_dim or h
    groups = [WeightGroup("embedding", v * embed_dim + spec.learned_positions * h, "embedding")]
    if spec.embed_proj_dim:  # OPT-350m projects the embedding in and out of the model width
        groups.append(WeightGroup("embed_proj", 2 * h * embed_dim, "linear",
                                  shapes=((h, embed_dim), (embed_dim, h))))
    groups.append(WeightGroup("final_norm", h * (2 if spec.norm == "layer" else 1), "norm"))
    if not spec.tie_embeddings:
        groups.append(WeightGroup("lm_head", v * embed_dim + (v if spec.lm_head_bias else 0), "lm_head",
                                  shapes=((v, embed_dim),)))
    return groups


@dataclass(frozen=True)
class ParamCounts:
    total: int
    active: int  # per token: routed experts counted top_k of n_experts
    embedding: int  # the token-embedding (and position) table
    lm_head: int  # 0 when tied to the embedding

    def to_dict(self) -> dict:
        return asdict(self)


def param_counts(spec: ModelSpec) -> ParamCounts:
    total = inactive = 0
    for layer in spec.layers:
        for g in layer_weights(spec, layer):
            total += g.params
            if g.kind == "expert":
                inactive += (spec.moe.n_experts - spec.moe.top_k) * g.per_expert
    glob = {g.op: g.params for g in global_weights(spec)}
    total += sum(glob.values())
    return ParamCounts(total, total - inactive, glob["embedding"], glob.get("lm_head", 0))
