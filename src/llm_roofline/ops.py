"""The operators of one step at one workload, as a readable list: a view of step.py's compiled closed forms
(the counting rules are stated there), used by the explanations and the hand-worked tests."""

from __future__ import annotations

from dataclasses import dataclass

from .architecture import ModelSpec
from .formats import WeightFormat
from .step import (CompiledStep, attended_keys, expected_experts, group_bits, kv_bytes_per_token, matrix_layout,
                   recurrent_state_bytes)

__all__ = ["Op", "Step", "step_ops", "attended_keys", "expected_experts", "group_bits", "kv_bytes_per_token",
           "matrix_layout", "recurrent_state_bytes"]


@dataclass(frozen=True)
class Op:
    name: str
    kind: str  # "matmul", "attention", "memory" (norms, lookups), "allreduce", "handoff"
    flops: float  # per instance, per device
    weight_bytes: float
    kv_bytes: float
    act_bytes: float
    compute: str  # dtype whose peak applies
    count: int = 1  # identical instances (e.g. the same op in 80 identical layers)
    comm_bytes: float = 0.0  # bytes each device sends over the device link
    matrices: tuple[tuple[float, float], ...] = ()
    latency_steps: int = 0  # per instance
    quantized_weights: float = 0.0

    @property
    def bytes(self) -> float:
        return self.weight_bytes + self.kv_bytes + self.act_bytes


@dataclass(frozen=True)
class Step:
    batch: int
    new_tokens: int
    context: float  # tokens already cached per sequence
    tp: int = 1
    pp: int = 1

    @property
    def tokens(self) -> int:
        return self.batch * self.new_tokens


def step_ops(spec: ModelSpec, fmt: WeightFormat, kv_bits: float, step: Step) -> list[Op]:
    """Every operator group of one step, per instance (identical layers folded into one Op with a count)."""
    compiled = CompiledStep(spec, fmt, kv_bits, step.tp, step.pp)
    v = compiled.evaluate(step.batch, step.new_tokens, step.context)
    return [Op(g.name, g.kind, v.flops[i, 0] / g.count, v.weight_bytes[i, 0] / g.count, v.kv_bytes[i, 0] / g.count,
               v.act_bytes[i, 0] / g.count, g.compute, g.count, v.comm_bytes[i, 0] / g.count, g.matrices,
               g.latency_steps, v.quantized_weights[i, 0] / g.count)
            for i, g in enumerate(compiled.groups)]
