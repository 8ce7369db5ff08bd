"""What predict returns: frozen results with to_dict(), in the field's words and with units in the names."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from .memory import MemoryResult
from .timing import Efficiency


@dataclass(frozen=True)
class OperatorRow:
    phase: str  # "decode" or "prefill"
    name: str
    kind: str
    count: int
    flops: float
    weight_bytes: float
    kv_bytes: float
    act_bytes: float
    comm_bytes: float
    intensity_flop_per_byte: float | None
    compute_dtype: str  # the dtype whose peak was used (after fallback)
    ceiling_ms: float
    estimate_ms: float
    bound: str  # "memory", "compute" or "link"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def of(cls, *values) -> "OperatorRow":
        """A row from its fields' values in order, without the generated __init__'s object.__setattr__ per field
        (a prediction makes a dozen rows or more; the row is the same frozen object)."""
        row = object.__new__(cls)
        row.__dict__.update(zip(_ROW_FIELDS, values))
        return row


_ROW_FIELDS = tuple(f.name for f in fields(OperatorRow))


@dataclass(frozen=True)
class Workload:
    weights: str
    kv_cache: str
    batch: int
    prompt: int
    context: int  # KV depth when decoding starts
    gen: int
    tp: int
    engine: str | None = None
    pp: int = 1  # pipeline stages (layer split); devices = tp x pp
    ep: int = 1  # expert-parallel devices per stage (a multiple of tp); devices = max(tp, ep) x pp

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class DecodeResult:
    ceiling_tok_s: float  # per sequence
    estimate_tok_s: float
    estimate_low_tok_s: float  # the 80% range of measured / estimate in public data (engines.py)
    estimate_high_tok_s: float
    ceiling_throughput_tok_s: float  # over the batch
    estimate_throughput_tok_s: float
    tpot_floor_ms: float
    tpot_ms: float
    bytes_per_step: float  # expected (MoE: uniform routing), what the estimate reads
    weight_bytes_per_step: float
    kv_bytes_per_step: float
    flops_per_step: float
    intensity_flop_per_byte: float
    bound: str  # "memory" or "compute"
    memory_bound_by: str | None  # "weights" or "kv_cache" when memory-bound
    compute_ms: float  # ceiling time of compute-bound operators per step
    memory_ms: float
    link_ms: float
    ceiling_bytes_per_step: float = 0.0  # what the ceiling reads: MoE at the fewest experts (top-k per layer)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PrefillResult:
    ttft_floor_ms: float
    ttft_ms: float
    ttft_low_ms: float
    ttft_high_ms: float
    ceiling_tok_s: float  # prompt tokens per second over the batch
    estimate_tok_s: float
    flops: float
    bytes: float
    intensity_flop_per_byte: float
    bound: str
    compute_ms: float
    memory_ms: float
    link_ms: float

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ModelInfo:
    id: str
    model_type: str
    params_total: int
    params_active: int
    weight_bytes: float  # all weights in the chosen format, whole model
    weights_format: str
    source: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class HardwareInfo:
    id: str
    name: str
    bandwidth_gbps: float
    memory_gb: float
    peak_tflops: dict
    link_gbps: float
    ridge_point_flop_per_byte: float | None  # at the weights' matmul dtype
    matmul_dtype: str  # dtype whose peak the weights' matmuls run at (after fallback)
    matmul_tflops: float | None
    confidence: str | None
    sources: tuple[str, ...]
    aliases: tuple[str, ...] = ()
    # further inputs of the estimate: HBM or not (an engine's bw_factor_hbm), SM cycles per second (unpack time),
    # the rate quantised-activation kernels are scaled by (Hardware.quantized_matmul_tops), the CUDA compute
    # capability (engines.replays_graph)
    memory_type: str | None = None
    sm_cycles_per_s: float | None = None
    quantized_matmul_tops: float | None = None
    compute_capability: float | None = None  # NVIDIA: decides whether an engine replays CUDA graphs

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Prediction:
    model: ModelInfo
    hardware: HardwareInfo
    workload: Workload
    efficiency: Efficiency
    decode: DecodeResult
    prefill: PrefillResult
    memory: MemoryResult
    operators: tuple[OperatorRow, ...]
    notes: tuple[str, ...] = field(default=())
    speculative: object | None = None  # speculative.SpeculativeResult, where a draft was given

    def to_dict(self) -> dict:
        return {
            "model": self.model.to_dict(),
            "hardware": self.hardware.to_dict(),
            "workload": self.workload.to_dict(),
            "efficiency": self.efficiency.to_dict(),
            "decode": self.decode.to_dict(),
            "prefill": self.prefill.to_dict(),
            "memory": self.memory.to_dict(),
            "operators": [row.to_dict() for row in self.operators],
            "notes": list(self.notes),
            "speculative": self.speculative.to_dict() if self.speculative is not None else None,
        }
