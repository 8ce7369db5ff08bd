"""A .safetensors checkpoint as MODEL: the architecture from the config.json beside it, the bytes from the file.

The tensors' names, shapes and dtypes come from the safetensors header (the `safetensors` package, memory-mapped:
no tensor data is read); a sharded checkpoint is found through its model.safetensors.index.json. Each tensor is
attributed to a kind (layer matrices, routed experts, embedding, output head, norms and biases) by its name, and
the format's bits per weight of a kind are the file's bytes over the parameters the architecture gives that kind,
so packed quantised weights (GPTQ/AWQ qweight, scales and zeros) count exactly what they store. An unquantised
checkpoint whose elements disagree with the architecture by more than 0.5% is refused.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from .errors import UserError
from .formats import WeightFormat

MISMATCH = 0.005
FLOAT_BITS = {"F64": 64, "F32": 32, "F16": 16, "BF16": 16, "F8_E4M3": 8, "F8_E5M2": 8, "I64": 64, "I32": 32,
              "I16": 16, "I8": 8, "U8": 8, "BOOL": 8}


def _files(path: Path) -> list[Path]:
    """The checkpoint's shards: those the index names, else the file itself."""
    index = path if path.name.endswith(".index.json") else path.parent / "model.safetensors.index.json"
    if index.is_file():
        try:
            names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UserError(f"{index}: not a readable safetensors index ({exc})") from None
        files = [index.parent / n for n in names]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise UserError(f"{index}: missing shards {', '.join(missing[:3])}")
        return files
    return [path]


def _kind(name: str, shape: tuple[int, ...]) -> str:
    n = name.lower()
    if "embed_tokens" in n or n.endswith(("wte.weight", "word_embeddings.weight")):
        return "embedding"
    if n.startswith("lm_head") or n.endswith("output.weight") and "layers" not in n:
        return "lm_head"
    if ".experts." in n:
        return "expert"
    if len(shape) <= 1:
        return "norm"
    return "linear"


def read_safetensors(path: Path) -> "ModelSpec":  # noqa: F821
    from .architecture import param_counts, params_by_kind, spec_from_config

    try:
        from safetensors import safe_open
    except ImportError:
        raise UserError("reading .safetensors files needs the safetensors package: pip install safetensors") from None
    config = path.parent / "config.json"
    if not config.is_file():
        raise UserError(f"{path}: a .safetensors file holds tensors, not the architecture; put its config.json "
                        "beside it (or pass the directory)")
    try:
        raw = json.loads(config.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"{config}: not a readable JSON config ({exc})") from None
    spec = spec_from_config(raw, path.parent.resolve().name, str(config))
    by_kind: dict[str, list[int]] = {}  # kind -> [bytes, elements]
    packed = False
    for file in _files(path):
        try:
            with safe_open(str(file), "np") as f:
                for name in f.keys():
                    s = f.get_slice(name)
                    shape, dtype = tuple(s.get_shape()), s.get_dtype()
                    elements = 1
                    for d in shape:
                        elements *= d
                    bits = FLOAT_BITS.get(dtype)
                    if bits is None:
                        raise UserError(f"{file}: tensor {name!r} has dtype {dtype}, not modelled")
                    packed |= dtype in ("I32", "I16", "U8", "I8") and "weight" in name or name.endswith("qweight")
                    entry = by_kind.setdefault(_kind(name, shape), [0, 0])
                    entry[0] += elements * bits // 8
                    entry[1] += elements
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001 - a file the library cannot parse
            raise UserError(f"{file}: not a readable safetensors file ({str(exc).splitlines()[0]})") from None
    params = params_by_kind(spec)
    elements = sum(e for _, e in by_kind.values())
    counted = param_counts(spec).total
    if not packed and abs(elements - counted) > MISMATCH * counted:
        raise UserError(f"{path}: the tensors hold {elements:,} parameters but the architecture in config.json has "
                        f"{counted:,}; this checkpoint is not modelled")

    def bits(kind: str, fallback: float | None = None) -> float | None:
        b = by_kind.get(kind, [0, 0])[0]
        return 8 * b / params[kind] if params[kind] and b else fallback

    moe = spec.moe is not None
    linear_bits = bits("linear")
    main = bits("expert") if moe else linear_bits
    if main is None:
        raise UserError(f"{path}: no layer weights found")
    quantised = spec.file_format or None
    compute = quantised.compute if quantised else ("fp32" if main > 16 else "fp8" if main <= 8 else "fp16")
    fmt = WeightFormat(
        f"{(quantised.id if quantised else spec.checkpoint_dtype)}-file", main, compute, bits("embedding", main),
        bits("lm_head", bits("embedding", main)), bits("norm", 16.0), moe_other_bits=linear_bits if moe else None,
        keeps="the checkpoint's own tensors: bits per weight of each kind are its bytes over the architecture's "
              "parameters of that kind", source=f"{path.name} (safetensors header)")
    total = sum(b for b, _ in by_kind.values())
    note = f"read from the safetensors header: {total / 1e9:,.2f} GB in {len(_files(path))} file(s)"
    return replace(spec, checkpoint_dtype=fmt.id, file_format=fmt, notes=spec.notes + (note,))
