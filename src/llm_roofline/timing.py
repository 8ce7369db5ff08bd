"""Timing a compiled step on a device, vectorised over workloads: the two answers, ceiling and estimate.

Per operator group:
  ceiling:  max(FLOPs / peak of its dtype, bytes / bandwidth)                 datasheet peaks, 100% efficiency;
            routed experts at the fewest a batch can touch (step.py: FLOOR), so no routing beats it
  estimate: max(kernel time / eta_c, bytes / (bandwidth x eta_bw) + unpack)   achievable fractions (engines.py)
plus, for the estimate, a fixed overhead per step and the latency of each all-reduce and pipeline hand-off. A
step's time is the sum over its groups. A run of G decode steps from depth D is averaged exactly: between the
kinks of step.py every group's two sides are affine in the depth, so the mean of their maximum over a segment
follows from its end points (mean_of_max). Layer split over pp devices (pipeline): a step passes the stages in
turn, so the estimate is the whole model's step on one device plus the hand-offs; the ceiling lets an engine
pipeline m micro-batches (the busiest stage does m / pp of the work) and takes the best m.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from .hardware import Hardware
from .step import (ACT, COMM, FLOOR, FLOPS, KINDS, KV, LINK_KINDS, QUANT, QUANTITIES, WEIGHT, CompiledStep,
                   StepValues)

HANDOFF = KINDS.index("handoff")
PREFILL_CHUNK = 512  # tokens a pipelined prefill sends down the stages at a time (llama.cpp's default ubatch)


@dataclass(frozen=True)
class Efficiency:
    bandwidth: float  # achievable fraction of peak memory bandwidth
    compute: float  # achievable fraction of peak matmul rate
    step_overhead_us: float  # per decode step: launches, scheduling, sampling
    allreduce_latency_us: float
    source: str
    int8_compute: float | None = None  # fraction of the int8 peak for quantised-activation kernels (else compute)
    prefill_overhead_us: float | None = None  # per prefill pass (else step_overhead_us)
    unpack_cycles_per_weight: float = 0.0  # SM cycles a decode kernel spends unpacking each block-quantised weight

    def to_dict(self) -> dict:
        return asdict(self)


def allreduce_hop_us(hw: Hardware) -> float:
    """Latency of one step of a ring all-reduce (2(N-1) steps over N devices) on the device's link, in µs: NCCL's
    own tuning model for small messages (src/graph/tuning.cc, hwLat, ring, LL protocol): 0.4 over NVLink-class
    links, 1.0 over PCIe. The fixed part of each all-reduce (launch, synchronisation) is the engine profile's
    allreduce_us, fitted."""
    return 0.4 if hw.link_gbps_bidir else 1.0


def mean_of_max(pa, qa, pb, qb):
    """(mean of max(P, Q), mean of P where P > Q) over a segment on which P and Q are affine, from their values
    at its two ends: max(P, Q) = Q + max(P - Q, 0), and P - Q crosses zero at most once."""
    da, db = pa - qa, pb - qb
    cross = (da > 0) != (db > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(cross, da / (da - db), 0.0)  # where P - Q crosses zero, as a fraction of the segment
    positive = np.where(cross, np.where(da > 0, s * da, (1 - s) * db) / 2, np.maximum(da + db, 0) / 2)
    p_cross = pa + s * (pb - pa)
    booked = np.where(cross, np.where(da > 0, s * (pa + p_cross), (1 - s) * (p_cross + pb)) / 2,
                      np.where(da + db > 0, (pa + pb) / 2, 0.0))
    return (qa + qb) / 2 + positive, booked


@dataclass(frozen=True)
class UnitTimes:
    """Seconds per group at 100% of the device's rates: (groups, workloads) each, views of one stacked array."""

    array: np.ndarray  # (6, groups, workloads): compute, kernel, memory, link, unpack, memory_floor
    stream: np.ndarray | None  # a measured profile's matmul time for such matrices and tokens (else None)

    compute = property(lambda self: self.array[0])  # FLOPs / peak of the group's dtype (0 where none is published)
    kernel = property(lambda self: self.array[1])  # the estimate's compute time before efficiency
    memory = property(lambda self: self.array[2])  # bytes / bandwidth
    link = property(lambda self: self.array[3])  # bytes sent / link bandwidth
    unpack = property(lambda self: self.array[4])  # block-quantised weights / SM cycles per second
    memory_floor = property(lambda self: self.array[5])  # the ceiling's bytes (the fewest experts) / bandwidth


class DeviceStep:
    """A compiled step on one device: each group's peak, kernel path and link, as (groups, 1) columns."""

    def __init__(self, step: CompiledStep, hw: Hardware):
        self.step, self.hw = step, hw
        peaks = [hw.peak(g.compute) for g in step.groups]
        self.dtypes = tuple(dtype for _, dtype in peaks)
        rate = np.array([(r or 0.0) * 1e12 for r, _ in peaks])
        qmt = hw.quantized_matmul_tops
        # quantised-activation kernels (Hardware.quantized_matmul_tops); a device with no int8 rate has no such path
        int8 = np.array([bool(dtype == "int8" and r and qmt) for r, dtype in peaks])
        self.int8_path = int8[:, None]
        inv_rate = np.where(rate > 0, 1 / np.where(rate > 0, rate, 1.0), 0.0)
        kernel = np.where(int8, 1 / ((qmt or 1.0) * 1e12), inv_rate)
        # a peak nobody published bounds nothing: the ceiling's compute side is zero there
        published = np.array([dtype not in hw.estimated_peaks for _, dtype in peaks])
        inv_rate = np.where(published, inv_rate, 0.0)
        sm = hw.sm_cycles_per_s
        # seconds per unit of each quantity: (5 unit times, groups, quantities)
        per = np.zeros((5, len(step.groups), len(QUANTITIES)))
        per[0, :, FLOPS] = inv_rate
        per[1, :, FLOPS] = kernel
        per[2, :, [WEIGHT, KV, ACT]] = 1.0  # bytes: divided by the bandwidth per workload
        per[3, :, COMM] = 1 / (hw.link_gbps * 1e9)
        per[4, :, QUANT] = 1 / sm if sm else 0.0
        self.per = per
        link = np.isin(step.kind, [KINDS.index(k) for k in LINK_KINDS])
        self.link, self.handoff = link[:, None], (step.kind == HANDOFF)[:, None]
        self.link_rows = np.where(link)[0]
        self.instances = np.where(link, step.instances, 0.0)[:, None]
        self.hop_s = (step.latency_steps * allreduce_hop_us(hw) * 1e-6)[:, None]
        self.no_peak = any((not r or dtype in hw.estimated_peaks) and g.kind not in LINK_KINDS
                           for (r, dtype), g in zip(peaks, step.groups))

    def subset(self, idx) -> "DeviceStep":
        """The device step restricted to the groups at `idx`."""
        import copy

        out = copy.copy(self)
        idx = np.asarray(idx, dtype=int)
        out.step = self.step.subset(idx)
        out.dtypes = tuple(self.dtypes[i] for i in idx)
        out.per = self.per[:, idx]
        for name in ("int8_path", "link", "handoff", "instances", "hop_s"):
            setattr(out, name, getattr(self, name)[idx])
        out.link_rows = np.where(out.link[:, 0])[0]
        return out

    def unit_times(self, v: StepValues, bandwidth_gbps) -> UnitTimes:
        """bandwidth_gbps: per workload."""
        a = v.array
        u = np.empty((6,) + a[:, FLOPS].shape)
        np.multiply(a[:, FLOPS], self.per[0, :, FLOPS, None], out=u[0])
        np.multiply(a[:, FLOPS], self.per[1, :, FLOPS, None], out=u[1])
        np.add(a[:, WEIGHT], a[:, KV], out=u[2])
        u[2] += a[:, ACT]
        u[2] /= np.asarray(bandwidth_gbps, dtype=float) * 1e9
        np.multiply(a[:, COMM], self.per[3, :, COMM, None], out=u[3])
        np.multiply(a[:, QUANT], self.per[4, :, QUANT, None], out=u[4])
        if self.step.spec.moe is not None:
            np.add(a[:, FLOOR], a[:, KV], out=u[5])
            u[5] += a[:, ACT]
            u[5] /= np.asarray(bandwidth_gbps, dtype=float) * 1e9
        else:
            u[5] = u[2]
        stream = self._stream(v, bandwidth_gbps) if self.hw.matmul_curves else None
        return UnitTimes(u, stream)

    def _stream(self, v: StepValues, bandwidth_gbps) -> np.ndarray:
        """Seconds a matmul takes at the weight-streaming rates a measured profile reached for matrices of its
        size and shape times this many vectors (the activations' traffic was part of that measurement), scaled
        to the cache level the step's working set lives in; 0 where the profile has no curve for it."""
        hw = self.hw
        tokens = self.step.curve_tokens(v)
        large = hw.bandwidth_curve[-1][1] if hw.bandwidth_curve else hw.bandwidth_gbps
        scale = large / np.broadcast_to(np.asarray(bandwidth_gbps, dtype=float), v.flops.shape[1:])
        out = np.zeros_like(v.flops)
        for i, g in enumerate(self.step.groups):
            if g.kind != "matmul" or not g.matrices:
                continue
            total = sum(size for size, _ in g.matrices)
            for j, n in enumerate(tokens[i]):
                rates = [hw.weight_stream_gbps(self.dtypes[i], n, size, aspect) for size, aspect in g.matrices]
                if n and all(rates):
                    out[i, j] = sum(v.weight_bytes[i, j] * size / total / (r * 1e9)
                                    for (size, _), r in zip(g.matrices, rates)) * scale[j]
        return out

    def sides(self, u: UnitTimes, eff: Efficiency | None) -> tuple[np.ndarray, np.ndarray]:
        """(compute side, memory side) of each group: (2, groups, workloads), [0] the ceiling and [1] the estimate
        (None: the ceiling only, (1, groups, workloads)). A group takes the larger side. Links count their bytes
        (and, in the estimate, their latencies); hand-offs add nothing to the ceiling (a pipeline can overlap them
        with the next micro-batch)."""
        g, n = u.compute.shape
        out_p = np.empty((1 if eff is None else 2, g, n))
        out_q = np.empty_like(out_p)
        out_p[0], out_q[0] = u.compute, u.memory_floor
        links = self.link_rows
        if links.size:
            link_c = np.where(self.handoff[links], 0.0, u.link[links])
            out_p[0, links] = out_q[0, links] = link_c
        if eff is None:
            return out_p, out_q
        compute_eff = np.where(self.int8_path, eff.int8_compute or eff.compute, eff.compute)
        np.divide(u.kernel, compute_eff, out=out_p[1])
        if u.stream is not None:  # a measured profile: the time this machine took for such matmuls
            np.maximum(out_p[1], u.stream, out=out_p[1])
        # Unpacking is SM work on weights as they arrive: at decode batches there is too little arithmetic to
        # hide it and it adds to the weight stream; once the multiply is compute-bound it overlaps with it. One
        # smooth rule for every batch, so more tokens never take less time.
        np.divide(u.memory, eff.bandwidth, out=out_q[1])
        if eff.unpack_cycles_per_weight:
            out_q[1] += eff.unpack_cycles_per_weight * u.unpack
        if links.size:
            link = (u.link[links] / eff.bandwidth + self.instances[links] * eff.allreduce_latency_us * 1e-6
                    + self.hop_s[links])
            out_p[1, links] = out_q[1, links] = link
        return out_p, out_q


@dataclass(frozen=True)
class PhaseTimes:
    """A phase (prefill, or the mean decode step of a run) on arrays of workloads: (workloads,) each; `rows`
    holds the operator table's (rows, workloads) arrays when asked for."""

    ceiling_s: np.ndarray
    estimate_s: np.ndarray  # with the phase's fixed overhead
    flops: np.ndarray
    bytes: np.ndarray
    weight_bytes: np.ndarray
    kv_bytes: np.ndarray
    compute_s: np.ndarray  # ceiling time of compute-bound groups
    memory_s: np.ndarray  # ceiling time of memory-bound groups
    link_s: np.ndarray
    rows: dict | None = None
    ceiling_bytes: np.ndarray | None = None  # the ceiling's bytes: MoE at the fewest experts the batch can touch


ROW_FIELDS = ("flops", "weight_bytes", "kv_bytes", "act_bytes", "comm_bytes", "ceiling_s", "estimate_s", "compute_s",
              "memory_s")


def _phase(ds: DeviceStep, quantities: np.ndarray, times: np.ndarray, booked: np.ndarray, overhead_us,
           rows: bool) -> PhaseTimes:
    """Sums over groups. quantities: (groups, QUANTITIES, workloads); times: (2, groups, workloads) ceiling and
    estimate; booked: the ceiling's compute-side part (groups, workloads)."""
    compute = np.where(ds.link, 0.0, booked)
    memory = np.where(ds.link, 0.0, times[0] - booked)
    total = quantities.sum(0)
    table = None
    if rows:
        stacked = np.concatenate([quantities[:, :COMM + 1].transpose(1, 0, 2), times, compute[None], memory[None]])
        table = dict(zip(ROW_FIELDS, np.einsum("rg,fgn->frn", ds.step.row_matrix, stacked)))
    sums = times.sum(1)
    return PhaseTimes(sums[0], sums[-1] + np.asarray(overhead_us) * 1e-6, total[FLOPS],
                      total[WEIGHT] + total[KV] + total[ACT], total[WEIGHT], total[KV], compute.sum(0),
                      memory.sum(0), np.where(ds.link, times[0], 0.0).sum(0), table,
                      total[FLOOR] + total[KV] + total[ACT])


def prefill_times(ds: DeviceStep, eff: Efficiency, batch, prompt, depth, bandwidth_gbps,
                  rows: bool = False) -> PhaseTimes:
    """The prompt's forward pass: batch x prompt new tokens on top of depth cached ones, then the pipeline."""
    v = ds.step.evaluate(batch, prompt, depth)
    p, q = ds.sides(ds.unit_times(v, bandwidth_gbps), eff)
    booked = np.where(p[0] > q[0], p[0], 0.0)
    overhead = eff.prefill_overhead_us if eff.prefill_overhead_us is not None else eff.step_overhead_us
    phase = _phase(ds, v.array, np.maximum(p, q), booked, overhead, rows)
    pp = ds.step.pp
    if pp == 1:
        return phase
    # A ceiling cannot beat the pp devices sharing the work evenly.
    factor = prefill_pipeline_factor(pp, prompt)
    work = phase.estimate_s - np.asarray(overhead) * 1e-6
    return replace(phase, ceiling_s=phase.ceiling_s / pp, estimate_s=work * factor + np.asarray(overhead) * 1e-6)


def prefill_pipeline_factor(pp: int, prompt):
    """The prompt goes down the stages in chunks: (chunks + pp - 1) chunk-stage times, the pipeline's fill and
    drain, against the whole pass on one device (a single chunk: the stages in turn, factor 1)."""
    chunks = np.ceil(np.asarray(prompt, dtype=float) / PREFILL_CHUNK)
    return (chunks + pp - 1) / (chunks * pp)


def decode_points(step: CompiledStep, depth, gen) -> np.ndarray:
    """Depths at which a run of gen decode steps from `depth` is evaluated: its ends and the kinks between them,
    (points, workloads); repeated points make empty segments."""
    start = np.asarray(depth, dtype=float).reshape(-1)
    end = start + np.asarray(gen, dtype=float).reshape(-1)
    start, end = np.broadcast_arrays(start, end)
    inner = [np.clip(k, start, end) for k in step.decode_kinks]
    return np.stack([start, *inner, end])


@dataclass(frozen=True)
class DecodeUnits:
    """A run of decode steps at 100% of the device's rates: the quantities' run means (groups, QUANTITIES,
    workloads), the unit times at the run's points (fields: groups, points x workloads), and each segment's share
    of the run (segments, workloads)."""

    quantities: np.ndarray
    units: UnitTimes
    points: int
    weight: np.ndarray

    def run_mean(self, p: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean over the run of max(p, q), and of p where it is the larger: (..., groups, points x workloads) in,
        (..., groups, workloads) out."""
        shape = p.shape[:-1] + (self.points, -1)
        p, q = p.reshape(shape), q.reshape(shape)
        m, booked = mean_of_max(p[..., :-1, :], q[..., :-1, :], p[..., 1:, :], q[..., 1:, :])
        return (m * self.weight).sum(-2), (booked * self.weight).sum(-2)


def decode_units(ds: DeviceStep, batch, depth, gen, bandwidth_gbps) -> DecodeUnits:
    """Unit times of a run of `gen` decode steps from `depth` (arrays broadcast together)."""
    b, depth, gen = (x.reshape(-1) for x in np.broadcast_arrays(*(np.asarray(v, dtype=float)
                                                                   for v in (batch, depth, gen))))
    points = decode_points(ds.step, depth, gen)
    n_pts, n = points.shape
    v = ds.step.evaluate(np.tile(b, n_pts), 1, points.reshape(-1), decode=True)
    length = np.diff(points, axis=0)  # (segments, workloads)
    weight = length / np.where(length.sum(0) > 0, length.sum(0), 1.0)
    bw = np.broadcast_to(np.asarray(bandwidth_gbps, dtype=float).reshape(-1), (n,))
    units = ds.unit_times(v, np.tile(bw, n_pts))
    x = v.array.reshape(v.array.shape[:2] + (n_pts, n))  # run means of affine quantities
    quantities = ((x[:, :, :-1] + x[:, :, 1:]) / 2 * weight).sum(2)
    return DecodeUnits(quantities, units, n_pts, weight)


def decode_times(ds: DeviceStep, eff: Efficiency, batch, depth, gen, bandwidth_gbps, rows: bool = False,
                 ceiling_only: bool = False) -> PhaseTimes:
    """The mean decode step of a run of `gen` steps from `depth`, exactly (module docstring)."""
    run = decode_units(ds, batch, depth, gen, bandwidth_gbps)
    p, q = ds.sides(run.units, None if ceiling_only else eff)
    times, booked = run.run_mean(p, q)
    return _phase(ds, run.quantities, times, booked[0], eff.step_overhead_us, rows)


def pipelined_decode_ceiling(ds: DeviceStep, eff: Efficiency, batch, depth, gen, bandwidth_gbps) -> np.ndarray:
    """Lowest time per decode step over pp stages: with the batch in m micro-batches (1 <= m <= min(B, pp)),
    each micro-batch passes every stage in turn (>= T(B/m), the whole step of B/m sequences on one device) and
    the busiest stage works on all m of them (>= m T(B/m) / pp, stages sharing the work evenly). An engine runs
    one m, so the least over m is a bound."""
    pp = ds.step.pp
    b = np.asarray(batch, dtype=float).reshape(-1)
    best = None
    for m in range(1, pp + 1):
        t = decode_times(ds, eff, b / m, depth, gen, bandwidth_gbps, ceiling_only=True).ceiling_s
        t = np.where(b >= m, np.maximum(t, m * t / pp), np.inf)
        best = t if best is None else np.minimum(best, t)
    return best


def mixed_step_s(ds: DeviceStep, eff: Efficiency, decode_batch, decode_depth, chunk_batch, chunk_tokens,
                 chunk_depth, bandwidth_gbps) -> np.ndarray:
    """The estimate of one iteration of a chunked-prefill scheduler (vLLM's): decode_batch sequences decode one
    token each at KV depth decode_depth, and chunk_batch prompts prefill chunk_tokens tokens each on top of
    chunk_depth of their own, in the same forward step. Quantities add, except that the weights are read once and
    the routed experts are those the step's tokens touch together. Arrays broadcast together."""
    step = ds.step
    c, dd, n, t, xd = (v.reshape(-1) for v in np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (
        decode_batch, decode_depth, chunk_batch, chunk_tokens, chunk_depth))))
    x = n * t
    phi_d = step.basis(c, 1.0, dd, decode=True)
    phi_p = step.basis(n, np.maximum(t, 1.0), xd) * (x > 0)  # the prompts' chunks (none: nothing)
    phi_p[0] = 0.0  # the weights: read once, with the decode part's
    if step.spec.moe is not None:
        e = step.basis_names.index("experts")
        tokens = c + x  # every token of the step; under expert parallel with replicas, the routed basis's
        phi_d[e] = step.basis(tokens, 1.0, 0.0)[e] if step.replicas == 1 else \
            step.basis(np.ones_like(tokens), tokens, 0.0)[e]
        phi_p[e] = 0.0
    g, q, k = step.single.shape
    values = (step.single.reshape(g * q, k) @ phi_d).reshape(g, q, -1)
    values += (step.multi.reshape(g * q, k) @ phi_p).reshape(g, q, -1)
    u = ds.unit_times(StepValues(values, phi_d), np.broadcast_to(np.asarray(bandwidth_gbps, dtype=float), c.shape))
    p, q_ = ds.sides(u, eff)
    return np.maximum(p[1], q_[1]).sum(0) + np.asarray(eff.step_overhead_us) * 1e-6
