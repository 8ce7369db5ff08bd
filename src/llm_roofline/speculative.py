"""Speculative decoding: k drafted tokens verified with one read of the target's weights.

A round drafts k tokens (k decode steps of a small draft model, or nothing for n-gram / prompt-lookup drafts),
then the target runs one step over the k + 1 positions of each sequence (the same closed forms as a prefill of
k + 1 tokens on the cache: its weights are read once, its FLOPs grow k + 1 times). With each drafted token accepted
with probability alpha, independently (Leviathan, Kalman and Matias 2023, "Fast Inference from Transformers via
Speculative Decoding", eq. 1), a round yields on average

    tokens per round = (1 - alpha^(k + 1)) / (1 - alpha)

so decode tok/s = tokens per round / (k x draft step + verify step). The ceiling and the estimate use the same
alpha (a ceiling for that acceptance rate: a luckier run can beat it); both time the draft and the verify step as
predict times any step. Steps are timed at the run's middle depth (context + gen / 2).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from .errors import UserError
from .timing import prefill_times

NGRAM_DRAFTS = ("ngram", "prompt-lookup")  # drafts that cost no model step
GLOBAL_ROWS = ("embedding", "embed_proj", "final_norm", "lm_head")
# DeepSeek-V3 technical report (arXiv:2412.19437, section 5.4.3): the second token its MTP module predicts is
# accepted 85-90% of the time across generation topics; the low end is the default
MTP_ACCEPTANCE = 0.85


@dataclass(frozen=True)
class SpeculativeResult:
    draft: str  # a model id, or ngram
    draft_tokens: int  # k
    acceptance: float  # alpha, per drafted token
    tokens_per_round: float
    draft_ms: float  # the k draft steps of a round (estimate)
    verify_ms: float  # the target's step over k + 1 positions (estimate)
    ceiling_tok_s: float  # per sequence
    estimate_tok_s: float
    speedup: float  # estimate against plain decoding's
    plain_estimate_tok_s: float
    break_even_acceptance: float | None  # below it speculation is slower than plain decoding (None: never pays)
    speedup_by_batch: dict = None  # batch -> speedup, the gain shrinking as the verify step turns compute-bound

    def to_dict(self) -> dict:
        return asdict(self)


def check_speculative(draft: str | None, draft_tokens: int, acceptance: float | None, mtp: int | None = None) -> None:
    if mtp is not None:
        if draft is not None:
            raise UserError("give --draft or --mtp, not both")
        if not isinstance(mtp, int) or isinstance(mtp, bool) or not 1 <= mtp <= 8:
            raise UserError(f"--mtp must be a number of prediction modules in 1..8, got {mtp!r}")
        draft = "mtp"
    if draft is None:
        return
    if not isinstance(draft_tokens, int) or isinstance(draft_tokens, bool) or not 1 <= draft_tokens <= 64:
        raise UserError(f"--draft-tokens must be a whole number in 1..64, got {draft_tokens!r}")
    if mtp is not None and acceptance is None:
        return  # MTP_ACCEPTANCE, the published figure
    if acceptance is None:
        raise UserError("speculative decoding needs --acceptance, the chance a drafted token is accepted (it "
                        "depends on the draft, the task and the sampling; measure it, e.g. vLLM's spec-decode "
                        "acceptance rate)")
    if not (isinstance(acceptance, (int, float)) and math.isfinite(acceptance) and 0 <= acceptance < 1):
        raise UserError(f"--acceptance must be in [0, 1), got {acceptance!r}")


def tokens_per_round(k: int, alpha: float) -> float:
    return (1 - alpha ** (k + 1)) / (1 - alpha)


def break_even(k: int, round_over_plain_step: float) -> float | None:
    """The acceptance at which a round's expected tokens equal the plain steps its time would have made."""
    if round_over_plain_step <= 1:
        return 0.0
    if round_over_plain_step >= k + 1:
        return None
    lo, hi = 0.0, 1.0 - 1e-12
    for _ in range(60):  # tokens_per_round rises monotonically with the acceptance
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if tokens_per_round(k, mid) < round_over_plain_step else (lo, mid)
    return (lo + hi) / 2


BATCHES = (1, 4, 16, 64, 256)


def speculate(target, draft, draft_name: str, k: int, alpha: float, batch: int, context: int, gen: int,
              plain_estimate_tok_s: float, by_batch: bool = True) -> SpeculativeResult:
    """target, draft: Compiled (draft None for n-gram drafts); a run of gen tokens from KV depth context, its
    rounds timed at the run's middle depth; plain decoding of the same run for the speedup by batch."""
    depth = context + gen / 2
    if target.pp > 1:
        raise UserError("speculative decoding with a layer split (--pp) is not modelled; use --tp")
    result = _round(target, draft, draft_name, k, alpha, batch, depth, plain_estimate_tok_s)
    if not by_batch:
        return result
    gains = {}
    for b in BATCHES:
        plain = 1 / float(target.times(b, 1, context, gen).decode.estimate_s[0])
        gains[b] = _round(target, draft, draft_name, k, alpha, b, depth, plain).speedup
    from dataclasses import replace

    return replace(result, speedup_by_batch=gains)


def _round(target, draft, draft_name: str, k: int, alpha: float, batch: int, depth: float,
           plain_estimate_tok_s: float) -> SpeculativeResult:
    bw = np.float64(target.hw.bandwidth_gbps)
    eff = target.efficiency
    verify = prefill_times(target.device, replace_overhead(eff), batch, k + 1, depth, bw)
    verify_ceiling = float(verify.ceiling_s[0])
    verify_estimate = float(verify.estimate_s[0]) + eff.step_overhead_us * 1e-6
    draft_ceiling = draft_estimate = 0.0
    if isinstance(draft, int):  # multi-token-prediction heads: each draft is that many decoder layers + the head
        draft_ceiling, draft_estimate = (k * x for x in mtp_step(target, draft, batch, depth))
    elif draft is not None:
        t = draft.times(batch, 1, depth, k)  # k decode steps from the same depth
        draft_ceiling, draft_estimate = k * float(t.decode.ceiling_s[0]), k * float(t.decode.estimate_s[0])
    n = tokens_per_round(k, alpha)
    round_s = draft_estimate + verify_estimate
    estimate = n / round_s
    return SpeculativeResult(draft_name, k, alpha, n, draft_estimate * 1e3, verify_estimate * 1e3,
                             n / (draft_ceiling + verify_ceiling), estimate, estimate / plain_estimate_tok_s,
                             plain_estimate_tok_s, break_even(k, round_s * plain_estimate_tok_s))


def mtp_step(target, heads: int, batch: int, depth: float) -> tuple[float, float]:
    """(ceiling, estimate) seconds of one draft token from `heads` multi-token-prediction modules (DeepSeek-V3's
    num_nextn_predict_layers): each is one decoder layer of the target's own shape, read once, and the shared
    output head; plus one step overhead."""
    t = target.times(batch, 1, depth, 1, rows=True)
    rows = t.decode.rows
    names = target.step.rows
    layer = [i for i, n in enumerate(names) if n not in GLOBAL_ROWS]
    head = [i for i, n in enumerate(names) if n in ("lm_head", "embedding")]
    per_layer = [float(rows[f][layer, 0].sum()) / target.spec.n_layers for f in ("ceiling_s", "estimate_s")]
    shared = [float(rows[f][head, 0].sum()) for f in ("ceiling_s", "estimate_s")]
    overhead = target.efficiency.step_overhead_us * 1e-6
    return heads * per_layer[0] + shared[0], heads * per_layer[1] + shared[1] + overhead


def replace_overhead(eff):
    """The verify step is a decode step: the step's overhead is added by the caller, not a prefill's."""
    from dataclasses import replace

    return replace(eff, prefill_overhead_us=0.0, step_overhead_us=0.0)
