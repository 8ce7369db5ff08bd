"""A compiled step on many workloads at once, each part evaluated only on the distinct values it depends on.

Exact, not an approximation: the same formulas (timing.py) on the same numbers, gathered back per workload.
  - Groups that do not read the KV cache (matmuls, norms, links) depend on the batch alone at decode (one new
    token per sequence) and on (batch, prompt) at prefill.
  - Every quantity of an attention group is a multiple of the batch (each sequence reads its own cache), and a
    group's time, max(compute, memory) and its run mean over a decode, is positively homogeneous in them: B
    sequences take B times one sequence's time. Attention is evaluated for one sequence on the distinct
    (KV depth, gen) pairs of the decode and (prompt, depth) pairs of the prefill.
A grid of 512 batches x 64 contexts x 32 lengths is then a few thousand evaluations and a gather. Where a part
is not separable (a measured profile's bandwidth follows the working set; a pipeline's ceiling micro-batches;
an attention group with a per-step weight term), factor() says so and the caller evaluates every workload.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .timing import DeviceStep, decode_times, prefill_times


def factor(compiled) -> tuple[DeviceStep, DeviceStep] | None:
    """(groups without the KV depth, attention groups) of a compiled step, or None where it does not separate."""
    hw, step = compiled.hw, compiled.step
    if hw.bandwidth_curve or hw.matmul_curves or compiled.pp > 1 or compiled.per_batch_overhead or step.replicas > 1:
        return None  # (replicas: attention is not a multiple of the batch but of its busiest replica's share)
    depth = step.depth_groups()
    per_step = [i for i, name in enumerate(step.basis_names) if name in ("one", "experts")]
    if (step.single[depth][:, :, per_step] != 0).any() or (step.multi[depth][:, :, per_step] != 0).any():
        return None  # an attention group with a cost that is not per sequence
    return compiled.device.subset(np.where(~depth)[0]), compiled.device.subset(np.where(depth)[0])


def _distinct(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The (x, y) pairs to evaluate for two broadcastable arrays, and each broadcast workload's index into them
    (flattened; None: one pair per workload, in order). Arrays on different axes of a grid (or one of them a
    single value) give the product of their distinct values, found before broadcasting; arrays that vary
    together are evaluated pair by pair."""
    shape = np.broadcast_shapes(x.shape, y.shape)
    if x.size * y.size > np.prod(shape, dtype=float):
        return np.broadcast_to(x, shape).reshape(-1), np.broadcast_to(y, shape).reshape(-1), None
    ux, ix = np.unique(x, return_inverse=True)
    uy, iy = np.unique(y, return_inverse=True)
    code = np.broadcast_to(ix.reshape(x.shape) * uy.size + iy.reshape(y.shape), shape)
    return np.repeat(ux, uy.size), np.tile(uy, ux.size), code.reshape(-1)


def _gather(values: np.ndarray, index: np.ndarray | None) -> np.ndarray:
    return values if index is None else values[index]


def times(compiled, parts: tuple[DeviceStep, DeviceStep], batch, prompt, depth, gen) -> dict[str, np.ndarray]:
    """Decode (mean step of the run) and prefill, ceiling and estimate, in seconds, flattened over the
    workloads the arrays broadcast to."""
    static, attention = parts
    eff = compiled.efficiency
    unit = replace(eff, step_overhead_us=0.0, prefill_overhead_us=0.0)  # each overhead is added once, below
    bw = np.float64(compiled.hw.bandwidth_gbps)
    b, p, d, g = (np.asarray(x, dtype=float) for x in (batch, prompt, depth, gen))
    shape = np.broadcast_shapes(b.shape, p.shape, d.shape, g.shape)
    sequences = np.broadcast_to(b, shape).reshape(-1)
    one = np.zeros(())

    def combine(fixed, fixed_index, per_sequence, per_sequence_index, overhead_us):
        out = {}
        for field in ("ceiling_s", "estimate_s"):
            total = _gather(getattr(fixed, field), fixed_index)
            if per_sequence is not None:
                total = total + sequences * _gather(getattr(per_sequence, field), per_sequence_index)
            out[field] = total
        out["estimate_s"] = out["estimate_s"] + overhead_us * 1e-6
        return out

    def expand(index, *arrays):  # a pair index over arrays that broadcast to fewer dimensions than the workloads
        part = np.broadcast_shapes(*(a.shape for a in arrays))
        if index is None:
            if part == shape:
                return None  # already one value per workload, in order
            index = np.arange(int(np.prod(part)))
        return np.broadcast_to(index.reshape(part), shape).reshape(-1)

    ub, _, ib = _distinct(b, one)
    dec_fixed = decode_times(static, unit, ub, 0.0, 1.0, bw)
    dec_attn = None
    ud, ug, idg = _distinct(d, g)
    if attention.step.groups:
        dec_attn = decode_times(attention, unit, 1.0, ud, ug, bw)
    decode = combine(dec_fixed, expand(ib, b), dec_attn, expand(idg, d, g), eff.step_overhead_us)

    pb, pt, ibt = _distinct(b, p)
    pre_fixed = prefill_times(static, unit, pb, pt, 0.0, bw)
    pre_attn = None
    qt, qd, itd = _distinct(p, d)
    if attention.step.groups:
        pre_attn = prefill_times(attention, unit, 1.0, qt, np.maximum(0.0, qd - qt), bw)
    overhead = eff.prefill_overhead_us if eff.prefill_overhead_us is not None else eff.step_overhead_us
    prefill = combine(pre_fixed, expand(ibt, b, p), pre_attn, expand(itd, p, d), overhead)
    return {"decode_ceiling_s": decode["ceiling_s"], "decode_estimate_s": decode["estimate_s"],
            "prefill_ceiling_s": prefill["ceiling_s"], "prefill_estimate_s": prefill["estimate_s"]}
