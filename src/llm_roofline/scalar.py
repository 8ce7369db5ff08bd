"""One workload in plain Python floats: the compiled step's closed forms without numpy's per-call cost.

A single prediction evaluates about ten operator groups at a handful of points; numpy spends more time setting up
each of its forty-odd small-array calls than on the arithmetic. This module evaluates the very same coefficient
tables (step.CompiledStep) with the very same per-unit rates (timing.DeviceStep) in floats, and times them by the
same rules (timing.py's docstring): a group's ceiling is max(compute, memory at the fewest experts), its estimate
max(kernel / eta_c, bytes / (bandwidth x eta_bw) + unpack), links their bytes plus latencies, a decode run the
exact mean of the maximum between kinks. compiled.Compiled.predict uses it where it applies (no measured matmul
or bandwidth curves, one pipeline stage) and the vectorised path everywhere else; tests hold the two equal.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from .step import ACT, COMM, FLOOR, FLOPS, KV, QUANT, QUANTITIES, WEIGHT, attended_keys, expected_experts
from .timing import Efficiency

NQ = len(QUANTITIES)


def applies(ds, hw, pp: int) -> bool:
    """Whether the plain-float path covers this compiled step on this device."""
    return pp == 1 and not hw.matmul_curves and not hw.bandwidth_curve


def _sparse(table) -> tuple:
    """(group, quantity, basis, coefficient) of every non-zero coefficient of a (groups, quantities, basis)
    table, as plain numbers."""
    g, q, k = table.nonzero()
    return tuple(zip((g * NQ + q).tolist(), k.tolist(), table[g, q, k].tolist()))


class ScalarStep:
    """timing.DeviceStep's numbers as Python lists, and the step evaluated and timed at one workload."""

    def __init__(self, ds):
        step = ds.step
        self.n = n = len(step.groups)
        self.single = _sparse(step.single)
        self.multi = _sparse(step.multi) if step.differs else self.single
        self.windows = step.windows
        self.kinks = step.decode_kinks
        self.replicas = step.replicas
        moe = step.spec.moe
        self.moe = (moe.n_experts, moe.top_k, step.routing_skew) if moe is not None else None
        # per group: offset into values(), link, hand-off, and the seconds per unit of each quantity
        self.rates = list(zip(range(0, n * NQ, NQ), ds.link[:, 0].tolist(), ds.handoff[:, 0].tolist(),
                              ds.per[3, :, COMM].tolist(), ds.instances[:, 0].tolist(), ds.hop_s[:, 0].tolist(),
                              ds.per[0, :, FLOPS].tolist(), ds.per[1, :, FLOPS].tolist(),
                              ds.int8_path[:, 0].tolist(), ds.per[4, :, QUANT].tolist()))
        self.is_link = ds.link[:, 0].tolist()
        self.any_link = any(self.is_link)
        self.depth_index = np.where(step.depth_groups())[0].tolist()  # groups whose quantities depend on the depth
        self.depth_rates = [self.rates[g] for g in self.depth_index]
        self.depth_table = tuple(e for e in self.single if e[0] // NQ in self.depth_index)
        self.row_of = [step.rows.index(g.name) for g in step.groups]
        self.n_rows = len(step.rows)
        self.folds = self.row_of != list(range(self.n))

    def values(self, b: float, t: float, d: float, decode: bool, table: tuple | None = None) -> list:
        """Every group's quantities at (B, T, D), flat: [group * NQ + quantity] (step.CompiledStep.evaluate);
        table: the coefficients of some groups only (the others stay 0)."""
        routed = b * t  # every token of the step (the routed experts see them all)
        if self.replicas > 1:
            b = -(-b // self.replicas)  # the busiest data-parallel replica's sequences (expert parallel)
        phi = [1.0, b * t, b]
        for w in self.windows:
            if decode:
                keys = d + 1 if w is None else min(d + 1, w)
            else:
                keys = attended_keys(d, t, w) if w is None else _keys_windowed(d, t, w)
            phi.append(b * keys)
            phi.append(b * (d if w is None else min(d, w)))
        if self.moe is not None:
            e, k, skew = self.moe
            phi.append(float(expected_experts(e, k, routed, skew)))
        if self.replicas > 1:
            phi.append(routed)
        if table is None:
            table = self.multi if (not decode and b * t > b) else self.single
        out = [0.0] * (self.n * NQ)
        for i, k, c in table:
            out[i] += c * phi[k]
        return out

    def sides(self, v: list, bandwidth_gbps: float, eff: Efficiency, rates: list | None = None) -> list:
        """Per group (ceiling compute, ceiling memory, estimate compute, estimate memory) (DeviceStep.sides);
        rates: those of some groups only."""
        bw = bandwidth_gbps * 1e9
        int8_eff, compute_eff, bw_eff = eff.int8_compute or eff.compute, eff.compute, eff.bandwidth
        lat, unpack = eff.allreduce_latency_us * 1e-6, eff.unpack_cycles_per_weight
        out = []
        for o, link, handoff, link_rate, instances, hop, inv_rate, kernel_rate, int8, unpack_rate in rates or self.rates:
            if link:
                c = 0.0 if handoff else v[o + COMM] * link_rate
                e = v[o + COMM] * link_rate / bw_eff + instances * lat + hop
                out.append((c, c, e, e))
                continue
            flops, rest = v[o + FLOPS], v[o + KV] + v[o + ACT]
            qe = (v[o + WEIGHT] + rest) / bw / bw_eff
            if unpack:
                qe += unpack * v[o + QUANT] * unpack_rate
            out.append((flops * inv_rate, (v[o + FLOOR] + rest) / bw,
                        flops * kernel_rate / (int8_eff if int8 else compute_eff), qe))
        return out

    def prefill(self, eff: Efficiency, b: float, t: float, d: float, bandwidth_gbps: float) -> "ScalarPhase":
        v = self.values(b, t, d, False)
        times, booked = [], []
        for pc, qc, pe, qe in self.sides(v, bandwidth_gbps, eff):
            times.append((max(pc, qc), max(pe, qe)))
            booked.append(pc if pc > qc else 0.0)
        overhead = eff.prefill_overhead_us if eff.prefill_overhead_us is not None else eff.step_overhead_us
        return self._phase(v, times, booked, overhead)

    def decode(self, eff: Efficiency, b: float, depth: float, gen: float, bandwidth_gbps: float) -> "ScalarPhase":
        """The mean step of a run of gen decode steps from depth (timing.decode_times). Groups that do not
        depend on the depth (the matmuls, norms) take the same time at every step; the others are averaged
        exactly over the run's segments."""
        end = depth + gen
        points = [depth, *(min(max(k, depth), end) for k in self.kinks), end]
        vals = [self.values(b, 1.0, points[0], True)]
        vals += [self.values(b, 1.0, x, True, self.depth_table) for x in points[1:]]  # what changes with depth
        first = self.sides(vals[0], bandwidth_gbps, eff)
        times = [(max(pc, qc), max(pe, qe)) for pc, qc, pe, qe in first]
        booked = [pc if pc > qc else 0.0 for pc, qc, _, _ in first]
        quantities = vals[0]
        if self.depth_rates:
            quantities = list(quantities)
            sides = [[first[g] for g in self.depth_index]] + [self.sides(v, bandwidth_gbps, eff, self.depth_rates)
                                                               for v in vals[1:]]
            total = end - depth
            weights = [(points[s + 1] - points[s]) / total for s in range(len(points) - 1)]
            for j, g in enumerate(self.depth_index):
                c = e = bk = 0.0
                for s, w in enumerate(weights):
                    if w:
                        a, z = sides[s][j], sides[s + 1][j]
                        m, part = _mean_of_max(a[0], a[1], z[0], z[1])
                        c += m * w
                        bk += part * w
                        e += _mean_of_max(a[2], a[3], z[2], z[3])[0] * w
                times[g], booked[g] = (c, e), bk
                for i in range(g * NQ, g * NQ + NQ):
                    quantities[i] = sum((vals[s][i] + vals[s + 1][i]) / 2 * w for s, w in enumerate(weights))
        return self._phase(quantities, times, booked, eff.step_overhead_us)

    def _phase(self, v: list, times: list, booked: list, overhead_us: float) -> "ScalarPhase":
        """Sums over groups, and the operator table's rows (timing._phase): per group its quantities, ceiling and
        estimate, and the ceiling's compute-bound and memory-bound parts (links: neither)."""
        per_group = [[v[o + FLOPS], v[o + WEIGHT], v[o + KV], v[o + ACT], v[o + COMM], c_s, e_s,
                      0.0 if link else bk, 0.0 if link else c_s - bk]
                     for o, (c_s, e_s), bk, link in zip(range(0, len(v), NQ), times, booked, self.is_link)]
        if self.folds:  # groups of the same row (the attention of every kind of layer, ...) summed
            rows = [[0.0] * 9 for _ in range(self.n_rows)]
            for r, values in zip(self.row_of, per_group):
                rows[r] = [a + x for a, x in zip(rows[r], values)]
        else:
            rows = per_group
        flops, weight, kv, act, _, ceiling, estimate, compute, memory = (sum(c) for c in zip(*per_group))
        link = sum(t[0] for t, is_link in zip(times, self.is_link) if is_link) if self.any_link else 0.0
        return ScalarPhase(ceiling, estimate + overhead_us * 1e-6, flops, weight + kv + act, weight, kv, compute,
                           memory, link, rows, sum(v[FLOOR::NQ]) + kv + act)


def _keys_windowed(context: float, new_tokens: float, window: int) -> float:
    """step.attended_keys with a window, on floats."""
    full = min(max(window - context, 0), new_tokens)
    return full * context + full * (full + 1) / 2 + (new_tokens - full) * window


def _mean_of_max(pa: float, qa: float, pb: float, qb: float) -> tuple[float, float]:
    """timing.mean_of_max on floats."""
    da, db = pa - qa, pb - qb
    if (da > 0) != (db > 0):
        s = da / (da - db)
        p_cross = pa + s * (pb - pa)
        if da > 0:
            return (qa + qb) / 2 + s * da / 2, s * (pa + p_cross) / 2
        return (qa + qb) / 2 + (1 - s) * db / 2, (1 - s) * (p_cross + pb) / 2
    if da > 0:  # P above Q throughout
        return (qa + qb) / 2 + (da + db) / 2, (pa + pb) / 2
    return (qa + qb) / 2, 0.0


_FIELDS = ("ceiling_s", "estimate_s", "flops", "bytes", "weight_bytes", "kv_bytes", "compute_s", "memory_s", "link_s",
           "rows", "ceiling_bytes")


class ScalarPhase(namedtuple("ScalarPhase", _FIELDS)):
    """timing.PhaseTimes for one workload: floats, and `rows` as [row][field] in timing.ROW_FIELDS order."""

    __slots__ = ()

    @classmethod
    def first(cls, phase) -> "ScalarPhase":
        """The first workload of a vectorised timing.PhaseTimes."""
        from .timing import ROW_FIELDS

        rows = None
        if phase.rows is not None:
            cols = [phase.rows[f][:, 0].tolist() for f in ROW_FIELDS]
            rows = [list(r) for r in zip(*cols)]
        return cls(*(float(getattr(phase, f)[0]) for f in _FIELDS[:9]), rows, float(phase.ceiling_bytes[0]))
