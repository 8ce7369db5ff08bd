"""`predict`: the two answers (ceiling and estimate) for one workload, a thin scalar wrapper over compile().

Per operator: time = max(FLOPs / peak of its dtype, bytes / bandwidth)   (the roofline)
  ceiling:  datasheet peaks, 100% efficiency, no overhead          -> a bound reality must not beat
  estimate: peaks x achievable fractions, plus a fixed per-step overhead (and all-reduce latency)
step.py computes every step's bytes and FLOPs, timing.py times them, compiled.py assembles the results.
"""

from __future__ import annotations

from pathlib import Path

from .architecture import ModelSpec
from .compiled import MAX_TOKENS, check_pp, check_tp, check_workload, compile, resolve_efficiency
from .errors import UserError
from .formats import WeightFormat
from .hardware import Hardware
from .results import (DecodeResult, HardwareInfo, ModelInfo, OperatorRow, Prediction, PrefillResult,
                      Workload)
from .speculative import check_speculative
from .timing import Efficiency, allreduce_hop_us

__all__ = ["predict", "Efficiency", "Prediction", "DecodeResult", "PrefillResult", "OperatorRow", "ModelInfo",
           "HardwareInfo", "Workload", "MAX_TOKENS", "check_tp", "check_pp", "resolve_efficiency", "allreduce_hop_us"]


def predict(
    model: str | Path | ModelSpec,
    hardware: str | Path | Hardware,
    *,
    weights: str | WeightFormat | None = None,
    kv_cache: str | None = None,
    batch: int = 1,
    prompt: int = 512,
    context: int | None = None,
    gen: int = 256,
    tp: int = 1,
    pp: int = 1,
    engine: str | None = None,
    bandwidth_efficiency: float | None = None,
    compute_efficiency: float | None = None,
    step_overhead_us: float | None = None,
    draft: str | Path | ModelSpec | None = None,
    draft_tokens: int = 4,
    acceptance: float | None = None,
    routing_skew: float = 0.0,
    mtp: int | None = None,
    ep: int = 1,
) -> Prediction:
    """Decode and prefill speed, memory fit and the per-operator roofline of `model` on `hardware`.

    batch sequences each prefill `prompt` tokens, then decode `gen` tokens starting from a KV cache `context`
    tokens deep (default: the prompt). weights / kv_cache name formats (default: the checkpoint's dtype / f16).
    engine (llama.cpp-cuda, vllm, tensorrt-llm, ...) selects a fitted efficiency profile for the estimate and its
    range; without it the device-class defaults apply. tp: tensor-parallel devices per stage; pp: pipeline
    stages (layer split, llama.cpp's default over several GPUs); ep: expert-parallel devices per stage for a
    mixture of experts (a multiple of tp: the dense part runs in ep / tp data-parallel replicas). draft (a model, or "ngram" for prompt-lookup
    drafts that cost no model step), draft_tokens and acceptance (per drafted token) add speculative decoding
    (speculative.py) beside the plain figures; mtp: that many multi-token-prediction modules as the draft. routing_skew: a Zipf exponent for the estimate's MoE routing
    (0: uniform); the ceiling always assumes the fewest experts."""
    check_workload(batch=batch, prompt=prompt, context=context, gen=gen)
    check_speculative(draft, draft_tokens, acceptance, mtp)
    compiled = compile(model, hardware, weights=weights, kv_cache=kv_cache, tp=tp, pp=pp, engine=engine,
                       bandwidth_efficiency=bandwidth_efficiency, compute_efficiency=compute_efficiency,
                       step_overhead_us=step_overhead_us, routing_skew=routing_skew, ep=ep)
    if mtp is not None and mtp > compiled.spec.mtp_layers:
        have = compiled.spec.mtp_layers
        raise UserError(f"{compiled.spec.id} has {have or 'no'} multi-token-prediction module{'s' if have != 1 else ''}"
                        " (num_nextn_predict_layers in its config)" + (f"; --mtp at most {have}" if have else
                                                                        "; use --draft MODEL or --draft ngram"))
    p = compiled.predict(batch, prompt, context, gen)
    if draft is None and mtp is None:
        return p
    if mtp is not None and acceptance is None:
        from .speculative import MTP_ACCEPTANCE

        acceptance = MTP_ACCEPTANCE
    return _with_speculation(p, compiled, mtp if mtp is not None else draft, draft_tokens, acceptance, tp, engine)


def _with_speculation(p: Prediction, compiled, draft, k: int, alpha: float, tp: int, engine) -> Prediction:
    from dataclasses import replace

    from .speculative import NGRAM_DRAFTS, speculate

    name = f"{draft} MTP module(s)" if isinstance(draft, int) else str(draft)
    draft_compiled = draft if isinstance(draft, int) else None
    if not isinstance(draft, int) and name not in NGRAM_DRAFTS:
        # the draft in the target's format and layout, with the same engine (vLLM and llama.cpp run it so)
        draft_compiled = compile(draft, compiled.hw, weights=compiled.fmt.id, tp=tp, engine=engine)
        name = draft_compiled.spec.id
    w = p.workload
    s = speculate(compiled, draft_compiled, name, k, alpha, w.batch, w.context, w.gen, p.decode.estimate_tok_s)
    notes = p.notes
    if draft_compiled is not None and not isinstance(draft_compiled, int):
        extra = draft_compiled.footprint.weights(tp) + w.batch * draft_compiled.footprint.kv(w.context + w.gen, tp)
        notes += (f"the draft {name} adds {extra / 1e9:,.1f} GB per device (weights and KV cache), not in the memory "
                  "figures above",)
    return replace(p, speculative=s, notes=notes)
