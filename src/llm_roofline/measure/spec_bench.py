"""Speculative decoding measured: transformers' assisted generation beside what speculative.py predicts.

The target decodes with `generate` twice on the same random prompt, greedily: plainly, and with a draft model
proposing a constant k tokens per round (assistant_model; the confidence cut-off that would end a round early is
turned off). A forward hook counts the target's passes (its first verifies the first drafts along with the prompt), so the
acceptance is measured, not assumed: a round of k drafts yields (1 - a^(k+1)) / (1 - a) tokens, solved for a
from the tokens per verify pass. The prediction is
speculative.py's speedup at that acceptance, applied to the measured plain rate (the generate loop's host work
per step is the same in both runs and is not the roofline's to predict), and also shown from the profile alone.

A draft of the target's own architecture built with the same seed has the target's weights (acceptance 1 by
construction: the cost of drafting with nothing to gain); another seed gives an unrelated model of the same
shapes (acceptance near 0: every round pays k draft steps for one token).
"""

from __future__ import annotations

import statistics
import time

from ..errors import UserError
from .device import synchronize


def _generate_s(model, ids, new_tokens: int, assistant=None, k: int = 4) -> float:
    import torch

    kw = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)
    if assistant is not None:
        assistant.generation_config.num_assistant_tokens = k
        assistant.generation_config.num_assistant_tokens_schedule = "constant"
        assistant.generation_config.assistant_confidence_threshold = 0.0
        kw["assistant_model"] = assistant
    with torch.inference_mode():
        synchronize(str(ids.device))
        t0 = time.perf_counter()
        model.generate(ids, attention_mask=torch.ones_like(ids), **kw)
        synchronize(str(ids.device))
    return time.perf_counter() - t0


def _decode_tok_s(model, ids, gen: int, repeats: int, assistant=None, k: int = 4) -> float:
    """Tokens per second after the first: (gen - 1) over a gen-token run less a one-token run, median of runs."""
    _generate_s(model, ids, gen, assistant, k)  # warm-up
    rates = []
    for _ in range(repeats):
        first = _generate_s(model, ids, 1, assistant, k)
        whole = _generate_s(model, ids, gen, assistant, k)
        rates.append((gen - 1) / max(whole - first, 1e-9))
    return statistics.median(rates)


def acceptance_from_rounds(tokens_per_round: float, k: int) -> float:
    """The per-token acceptance a at which a round of k drafts yields tokens_per_round tokens on average."""
    if not 1 <= tokens_per_round <= k + 1 + 1e-9:
        raise UserError(f"{tokens_per_round:.2f} tokens per verify pass is outside 1..{k + 1}")
    if tokens_per_round >= k + 1 - 1e-9:
        return 1.0
    lo, hi = 0.0, 1.0
    for _ in range(60):
        a = (lo + hi) / 2
        got = k + 1 if a >= 1 else (1 - a ** (k + 1)) / (1 - a)
        lo, hi = (a, hi) if got < tokens_per_round else (lo, a)
    return (lo + hi) / 2


def bench_speculative(model: str, draft: str, device: str, weights: str = "f32", prompt: int = 32, gen: int = 64,
                      draft_tokens: int = 4, hardware=None, repeats: int = 3, draft_seed: int = 1) -> dict:
    """Plain and assisted generation of `model` (random weights, seed 0) with `draft` (seed draft_seed: 0 makes a
    draft of the same architecture the target itself), measured and predicted."""
    import torch

    from ..roofline import predict
    from .bench import _catalog_config, build_model, check_inputs

    spec, fmt, checkpoint, hw = check_inputs(model, device, weights, (1,), prompt, gen, repeats, hardware)
    draft_spec, _, draft_checkpoint, _ = check_inputs(draft, device, weights, (1,), prompt, gen, repeats, hardware)
    if hw is None:
        raise UserError("bench needs a measured profile: pass --hardware PROFILE.json from `llm-roofline measure`")
    if draft_spec.vocab_size != spec.vocab_size:
        raise UserError(f"the draft {draft_spec.id} has a vocabulary of {draft_spec.vocab_size:,} tokens and the "
                        f"target {spec.vocab_size:,}: assisted generation needs the same tokenizer")
    if not 1 <= draft_tokens <= 16:
        raise UserError(f"--draft-tokens must be 1..16, got {draft_tokens}")
    if checkpoint or draft_checkpoint:
        raise UserError("bench --draft builds catalog models with random weights; pass catalog ids")
    target = build_model(_catalog_config(spec.id), device, weights)
    assistant = build_model(_catalog_config(draft_spec.id), device, weights, seed=draft_seed)
    for m in (target, assistant):
        m.generation_config.eos_token_id = None  # random weights: never stop early
    torch.manual_seed(1234)
    ids = torch.randint(1, spec.vocab_size, (1, prompt), device=device)
    passes = []
    hook = target.register_forward_hook(lambda *_: passes.append(1))
    plain = _decode_tok_s(target, ids, gen, repeats)
    passes.clear()
    _generate_s(target, ids, gen, assistant, draft_tokens)
    rounds = max(len(passes), 1)  # the target's first pass verifies the first drafts along with the prompt
    hook.remove()
    assisted = _decode_tok_s(target, ids, gen, repeats, assistant, draft_tokens)
    alpha = acceptance_from_rounds(min(gen / rounds, draft_tokens + 1), draft_tokens)
    p = predict(spec, hw, weights=fmt, batch=1, prompt=prompt, context=prompt, gen=gen, draft=draft_spec,
                draft_tokens=draft_tokens, acceptance=alpha)
    s = p.speculative
    predicted = plain * s.speedup
    return {
        "model": spec.id, "draft": draft_spec.id, "draft_seed": draft_seed, "weights": weights, "device": device,
        "prompt": prompt, "gen": gen, "draft_tokens": draft_tokens, "repeats": repeats, "hardware": hw.id,
        "weights_source": "random weights with the catalog architectures (the draft from seed "
                          f"{draft_seed}{': the target itself' if draft_seed == 0 and draft_spec.id == spec.id else ''})",
        "target_passes": rounds, "acceptance": alpha, "tokens_per_round": gen / rounds,
        "plain_measured_tok_s": plain, "plain_profile_estimate_tok_s": s.plain_estimate_tok_s,
        "assisted_measured_tok_s": assisted, "predicted_speedup": s.speedup, "measured_speedup": assisted / plain,
        "assisted_predicted_tok_s": predicted, "assisted_profile_estimate_tok_s": s.estimate_tok_s,
        "error_pct": 100 * (predicted - assisted) / assisted,
        "break_even_acceptance": s.break_even_acceptance,
    }
