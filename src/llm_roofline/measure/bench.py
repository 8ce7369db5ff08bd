"""A real decode with Hugging Face transformers on PyTorch, timed, beside what the roofline predicts.

MODEL is a local checkpoint directory (config.json + safetensors, loaded with trust_remote_code=False and
local_files_only=True) or a catalog id, which is built with its exact architecture and random weights: decode
cost does not depend on the weights' values, and the result says which was used. The KV cache is transformers'
StaticCache (preallocated for prompt + gen tokens), the loop is prefill then one forward per generated token with
greedy sampling, timed with device synchronisation after warm-up, repeated, median taken.

The estimate beside the measurement comes from the machine's profile alone (measured bandwidth at the step's
working-set size, measured matmul rates, the per-step and per-layer overheads of a tiny decoder) and the model's
operator list: nothing is fitted to the model being benchmarked.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import UserError
from .device import available_memory_bytes, synchronize

TORCH_DTYPES = {"f32": "float32", "bf16": "bfloat16", "f16": "float16", "int8": "float32"}


@dataclass(frozen=True)
class BenchRow:
    batch: int
    measured_tok_s: float  # per sequence
    measured_throughput_tok_s: float
    ttft_ms: float
    tpot_ms: float
    tpot_min_ms: float
    tpot_max_ms: float
    estimate_tok_s: float
    ceiling_tok_s: float
    error_pct: float  # 100 x (estimate - measured) / measured
    mbu: float  # model bandwidth utilisation: bytes per step x steps per second / measured bandwidth
    estimate_ttft_ms: float
    bytes_per_step: float
    # The memory's streaming read rate timed right after this row (the profile's method): on a shared machine it
    # drifts by tens of percent over minutes, and the estimate knows only the profile's rate
    read_gbps_after: float

    def to_dict(self) -> dict:
        return asdict(self)


def build_model(config: dict, device: str, weights: str, checkpoint: Path | None = None, seed: int = 0):
    """A transformers causal LM: from a local checkpoint, or from a config with random weights (seed)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    dtype = getattr(torch, TORCH_DTYPES[weights])
    if checkpoint is not None:
        model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=dtype, trust_remote_code=False,
                                                     local_files_only=True)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            clean = {k: v for k, v in config.items() if k not in ("quantization_config", "auto_map")}
            (Path(tmp) / "config.json").write_text(json.dumps(clean))
            cfg = AutoConfig.from_pretrained(tmp, trust_remote_code=False, local_files_only=True)
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype, trust_remote_code=False)
    model = model.to(device).eval()
    if weights == "int8":
        if device != "cpu":
            raise UserError("--weights int8 uses PyTorch dynamic quantisation, which runs on the CPU only")
        model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    return model


def decode_steps(model, device: str, batch: int, prompt: int, gen: int, repeats: int = 3) -> dict:
    """Prefill `prompt` random tokens for `batch` sequences, then generate `gen` tokens greedily, `repeats` times
    after one warm-up; returns the median TTFT and per-token time (seconds) and their spread."""
    import torch
    from transformers import StaticCache

    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    cache = StaticCache(config=config, max_cache_len=prompt + gen)
    vocab = config.vocab_size
    import inspect

    # transformers renamed the cache argument of forward (past_key_values -> cache) in its 5.x series
    key = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    ttfts, steps = [], []
    with torch.inference_mode():
        for rep in range(repeats + 1):
            cache.reset()
            ids = torch.randint(0, vocab, (batch, prompt), device=device)
            synchronize(device)
            t0 = time.perf_counter()
            out = model(input_ids=ids, **{key: cache}, cache_position=torch.arange(prompt, device=device),
                        use_cache=True)
            token = out.logits[:, -1:].argmax(-1)
            synchronize(device)
            ttft = time.perf_counter() - t0
            times = []
            for i in range(gen - 1):
                t0 = time.perf_counter()
                out = model(input_ids=token, **{key: cache},
                            cache_position=torch.tensor([prompt + i], device=device), use_cache=True)
                token = out.logits[:, -1:].argmax(-1)
                synchronize(device)
                times.append(time.perf_counter() - t0)
            if rep:  # the first pass is the warm-up
                ttfts.append(ttft)
                steps += times
    return {"ttft_s": statistics.median(ttfts), "tpot_s": statistics.median(steps), "tpot_min_s": min(steps),
            "tpot_max_s": max(steps)}


def _check_fits(spec, fmt, batch: int, length: int, device: str) -> None:
    from ..memory import activation_bytes, kv_cache_bytes, weight_bytes

    need = weight_bytes(spec, fmt) + kv_cache_bytes(spec, 16 if fmt.id != "f32" else 32, batch, length) + \
        activation_bytes(spec, fmt, batch, length)
    have = available_memory_bytes(device)
    if need > 0.8 * have:
        raise UserError(f"{spec.id} in {fmt.id} at batch {batch} needs about {need / 1e9:.1f} GB and {device} has "
                        f"{have / 1e9:.1f} GB available (80% may be used): choose a smaller model, batch or format")


def check_inputs(model: str, device: str, weights: str = "f32", batches: tuple[int, ...] = (1,), prompt: int = 32,
                 gen: int = 32, repeats: int = 3, hardware=None):
    """Every bench input checked before anything is measured or built: (spec, format, checkpoint dir or None,
    measured profile or None)."""
    from ..architecture import load_model
    from ..errors import require_positive
    from ..formats import load_format
    from ..hardware import load_hardware

    if weights not in TORCH_DTYPES:
        raise UserError(f"--weights must be one of {', '.join(TORCH_DTYPES)} for bench, got {weights!r}")
    for name, value in (("prompt", prompt), ("gen", gen), ("repeats", repeats)):
        require_positive(name, value)
    if gen < 2:
        raise UserError("gen must be >= 2: the first token comes from the prefill, the rest are timed")
    if not batches:
        raise UserError("--batch needs at least one batch size")
    for b in batches:
        require_positive("batch", b)
    spec = load_model(model)
    if spec.max_position and prompt + gen > spec.max_position:
        raise UserError(f"prompt + gen = {prompt + gen} tokens is past {spec.id}'s {spec.max_position} positions "
                        f"(max_position_embeddings); use a shorter --prompt or --gen")
    path = Path(model).expanduser()
    checkpoint = path if path.is_dir() and any(path.glob("*.safetensors")) else None
    if path.is_dir() and checkpoint is None:
        raise UserError(f"{model!r} holds no *.safetensors weights; pass a catalog id to bench random weights")
    if checkpoint is not None:
        _check_safetensors(checkpoint)
    fmt = load_format(weights)
    for b in batches:
        _check_fits(spec, fmt, b, prompt + gen, device)
    hw = load_hardware(hardware) if hardware is not None else None
    if hw is not None and not hw.measured:
        raise UserError("bench needs a measured profile: pass --hardware PROFILE.json from `llm-roofline measure`")
    if checkpoint is None:
        _catalog_config(spec.id)
    return spec, fmt, checkpoint, hw


def _check_safetensors(checkpoint: Path) -> None:
    """Each weight file's header must read (a truncated or corrupt file is refused before loading)."""
    from safetensors import safe_open

    for f in sorted(checkpoint.glob("*.safetensors")):
        try:
            with safe_open(str(f), framework="pt") as handle:
                handle.keys()
        except Exception as exc:  # safetensors raises its own error types for every kind of bad header
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise UserError(f"{f}: not a readable safetensors file ({reason})") from None


def bench(model: str, device: str, weights: str = "f32", batches: tuple[int, ...] = (1,), prompt: int = 32,
          gen: int = 32, hardware=None, repeats: int = 3, progress=None) -> dict:
    """Measure decode on this machine and set it beside the profile-based prediction. progress(done, total,
    label) is called after each batch."""
    from ..roofline import predict
    from .micro import read_gbps_now

    spec, fmt, checkpoint, hw = check_inputs(model, device, weights, batches, prompt, gen, repeats, hardware)
    if hw is None:
        raise UserError("bench needs a measured profile: pass --hardware PROFILE.json from `llm-roofline measure`")
    config_path = (checkpoint / "config.json") if checkpoint else None
    raw = json.loads(config_path.read_text()) if config_path else _catalog_config(spec.id)
    net = build_model(raw, device, weights, checkpoint)
    rows = []
    for done, b in enumerate(batches, 1):
        m = decode_steps(net, device, b, prompt, gen, repeats)
        if progress is not None:
            progress(done, len(batches), f"batch {b}")
        p = predict(spec, hw, weights=fmt, batch=b, prompt=prompt, context=prompt, gen=gen)
        measured = 1 / m["tpot_s"]
        read_now = read_gbps_now(device)
        rows.append(BenchRow(
            batch=b, measured_tok_s=measured, measured_throughput_tok_s=b * measured, ttft_ms=m["ttft_s"] * 1e3,
            tpot_ms=m["tpot_s"] * 1e3, tpot_min_ms=m["tpot_min_s"] * 1e3, tpot_max_ms=m["tpot_max_s"] * 1e3,
            estimate_tok_s=p.decode.estimate_tok_s, ceiling_tok_s=p.decode.ceiling_tok_s,
            error_pct=100 * (p.decode.estimate_tok_s - measured) / measured,
            mbu=p.decode.bytes_per_step * measured / (hw.bandwidth_gbps * 1e9),
            estimate_ttft_ms=p.prefill.ttft_ms, bytes_per_step=p.decode.bytes_per_step, read_gbps_after=read_now))
    del net
    return {"model": spec.id, "weights_source": "checkpoint " + str(checkpoint) if checkpoint else
            "random weights with the catalog architecture (decode cost does not depend on weight values)",
            "weights": weights, "device": device, "prompt": prompt, "gen": gen, "repeats": repeats,
            "hardware": hw.id, "hardware_name": hw.name, "bandwidth_gbps": hw.bandwidth_gbps,
            "rows": [r.to_dict() for r in rows],
            "warnings": drift_warnings(hw.bandwidth_gbps, [r.read_gbps_after for r in rows])}


DRIFT = 0.15  # a read rate this far from the profile's means the machine is not the one that was measured


def drift_warnings(profile_gbps: float, reads_gbps: list[float]) -> list[str]:
    """A line when the memory's read rate timed beside the rows strays more than DRIFT from the profile's."""
    lo, hi = min(reads_gbps) / profile_gbps - 1, max(reads_gbps) / profile_gbps - 1
    if max(-lo, hi) <= DRIFT:
        return []
    span = f"{100 * lo:+.0f}%" if round(100 * lo) == round(100 * hi) else f"{100 * lo:+.0f}% to {100 * hi:+.0f}%"
    return [f"the memory read {span} off the profile's {profile_gbps:,.1f} GB/s right "
            f"after these rows: the machine's speed has moved since `measure`, and the estimate knows only the "
            f"profile; measure again, or bench on a quieter machine"]


def _catalog_config(model_id: str) -> dict:
    from .. import catalog

    path = catalog.MODELS_DIR / f"{model_id}.json"
    if not path.exists():
        raise UserError(f"{model_id!r} is not a catalog model; pass a checkpoint directory")
    return json.loads(path.read_text())
