"""Speculative decoding: the expected tokens per round (Leviathan et al. 2023, eq. 1) over a round's time, the
verify step timed as a prefill of k + 1 positions on the cache."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import llm_roofline as lr
from llm_roofline.speculative import tokens_per_round


def test_tokens_per_round_by_hand():
    assert tokens_per_round(4, 0.7) == pytest.approx((1 - 0.7 ** 5) / 0.3)  # 2.7731
    assert tokens_per_round(4, 0.0) == 1.0  # the target's own token only
    assert tokens_per_round(1, 0.5) == pytest.approx(1.5)


def test_ngram_round_is_one_verify_step():
    """Prompt-lookup drafts cost nothing: a round is the target's step over k + 1 positions at the run's middle
    depth, which predict times as a prefill of k + 1 tokens on that many cached ones."""
    k, a, batch, context, gen = 4, 0.6, 8, 2000, 200
    p = lr.predict("llama-3.1-8b", "h100", batch=batch, context=context, gen=gen, draft="ngram", draft_tokens=k,
                   acceptance=a)
    depth = context + gen / 2
    verify = lr.predict("llama-3.1-8b", "h100", batch=batch, prompt=k + 1, context=int(depth) + k + 1)
    n = (1 - a ** (k + 1)) / (1 - a)
    assert p.speculative.ceiling_tok_s == pytest.approx(n / (verify.prefill.ttft_floor_ms / 1e3), rel=1e-9)
    # the estimate pays one step overhead per round (with the class defaults a prefill's overhead is the same)
    assert p.efficiency.prefill_overhead_us is None
    assert p.speculative.verify_ms == pytest.approx(verify.prefill.ttft_ms, rel=1e-9)


def test_a_draft_model_costs_its_steps_and_nothing_accepted_is_slower():
    kw = dict(weights="fp8", tp=2, draft_tokens=4)
    free = lr.predict("llama-3.1-70b", "h100", draft="ngram", acceptance=0.7, **kw).speculative
    model = lr.predict("llama-3.1-70b", "h100", draft="llama-3.2-1b", acceptance=0.7, **kw)
    assert 0 < model.speculative.draft_ms and model.speculative.estimate_tok_s < free.estimate_tok_s
    assert model.speculative.speedup > 1.5  # a 70B target reads 70x the draft's bytes per token
    assert any("the draft llama-3.2-1b adds" in n for n in model.notes)
    none = lr.predict("llama-3.1-70b", "h100", draft="ngram", acceptance=0.0, **kw).speculative
    assert none.speedup < 1


@settings(max_examples=30, deadline=None)
@given(st.floats(0, 0.95), st.floats(0, 0.95), st.integers(1, 8))
def test_more_acceptance_is_never_slower(a1, a2, k):
    lo, hi = sorted((a1, a2))
    f = lambda a: lr.predict("llama-3.1-8b", "4090", weights="q4_k_m", draft="llama-3.2-1b", draft_tokens=k,  # noqa
                             acceptance=a).speculative
    slow, fast = f(lo), f(hi)
    assert fast.estimate_tok_s >= slow.estimate_tok_s * (1 - 1e-12)
    assert fast.ceiling_tok_s >= fast.estimate_tok_s


@pytest.mark.parametrize("kw", [dict(draft="ngram"), dict(draft="ngram", acceptance=1.0),
                                dict(draft="ngram", acceptance=0.5, draft_tokens=0),
                                dict(draft="no-such-model", acceptance=0.5)])
def test_bad_speculative_inputs_are_refused(kw):
    with pytest.raises(lr.UserError):
        lr.predict("llama-3.1-8b", "h100", **kw)


def test_break_even_acceptance_and_the_gain_by_batch():
    """At the break-even acceptance a round makes as many tokens as plain steps in the same time; the gain
    shrinks as batching turns the verify step compute-bound."""
    from llm_roofline.speculative import break_even

    a = break_even(4, 2.0)
    assert tokens_per_round(4, a) == pytest.approx(2.0, rel=1e-9)
    assert break_even(4, 0.5) == 0.0 and break_even(4, 6.0) is None
    sp = lr.predict("llama-3.1-8b", "h100", draft="llama-3.2-1b", acceptance=0.7).speculative
    even = lr.predict("llama-3.1-8b", "h100", draft="llama-3.2-1b", acceptance=sp.break_even_acceptance).speculative
    assert even.speedup == pytest.approx(1.0, rel=1e-6)
    assert sp.speedup_by_batch[256] < sp.speedup_by_batch[1]
    assert sp.speedup_by_batch[1] == pytest.approx(sp.speedup, rel=1e-9)


def test_mtp_drafts_cost_one_layer_and_the_shared_head():
    """DeepSeek-V3's MTP module: a draft token reads one decoder layer of the target's shape (the average of its
    61) and the shared output head; acceptance 0.85 by default (DeepSeek-V3 report, 85-90%)."""
    kw = dict(weights="fp8", tp=8, batch=1, context=1000, gen=2)
    p = lr.predict("deepseek-v3", "h200", mtp=1, draft_tokens=1, **kw)
    sp = p.speculative
    assert sp.acceptance == 0.85 and sp.tokens_per_round == pytest.approx(1.85)
    # by hand from the operator table at the run's middle depth (the table is a mean over a 2-step run)
    q = lr.predict("deepseek-v3", "h200", weights="fp8", tp=8, batch=1, context=1001, gen=1)
    rows = [r for r in q.operators if r.phase == "decode"]
    layers = sum(r.estimate_ms for r in rows if r.name not in ("embedding", "final_norm", "lm_head")) / 61
    head = sum(r.estimate_ms for r in rows if r.name in ("embedding", "lm_head"))
    assert sp.draft_ms == pytest.approx(layers + head + q.efficiency.step_overhead_us / 1e3, rel=1e-6)
    with pytest.raises(lr.UserError):
        lr.predict("deepseek-v3", "h200", mtp=0, **kw)
    with pytest.raises(lr.UserError, match="at most 1"):
        lr.predict("deepseek-v3", "h200", mtp=2, **kw)
    with pytest.raises(lr.UserError, match="no multi-token-prediction"):
        lr.predict("llama-3.1-8b", "h100", mtp=1)
    with pytest.raises(lr.UserError, match="draft-tokens"):
        lr.predict("deepseek-v3", "h200", mtp=1, **{**kw, "draft_tokens": 100})
