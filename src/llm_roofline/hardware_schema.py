"""The boundary for device and profile JSON files a user passes as --hardware: types, finiteness and ranges,
checked once with pydantic before any figure is used. Catalog records are checked by the catalog's own tests.

Unknown extra fields are kept (a `measure` profile carries its raw measurements too); every field the model
reads has a type here. The first problem found becomes one line naming the field, the value and the fix.
"""

from __future__ import annotations

from typing import Annotated, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import UserError

PositiveFloat = Annotated[float, Field(gt=0, lt=1e12, allow_inf_nan=False, strict=True)]
NonNegativeFloat = Annotated[float, Field(ge=0, lt=1e12, allow_inf_nan=False, strict=True)]
Text = Annotated[str, Field(strict=True, max_length=10_000)]
DTYPES = ("fp32", "tf32", "fp16", "bf16", "fp8", "int8", "int4", "fp4", "fp64")
CATEGORIES = ("datacenter_gpu", "superchip", "datacenter_accelerator", "tpu", "consumer_gpu", "workstation_gpu",
              "apple_soc", "server_cpu", "desktop_cpu", "edge_soc", "desktop_soc", "apu")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class BandwidthPoint(_Strict):
    bytes: PositiveFloat
    read_gbps: PositiveFloat


class RooflinePoint(_Strict):
    vectors: PositiveFloat
    gbps: PositiveFloat
    dtype: Text = "fp32"
    aspect: PositiveFloat = 1.0
    matrix_bytes: Optional[PositiveFloat] = None
    weight_bytes: Optional[PositiveFloat] = None


class DeviceRecord(_Strict):
    id: Text
    name: Optional[Text] = None
    category: Text = "datacenter_gpu"
    memory_gb: PositiveFloat
    bandwidth_gbps: PositiveFloat
    peak_tflops: dict[Text, Optional[NonNegativeFloat]] = Field(default_factory=dict)
    vendor: Text = ""
    link_gbps_bidir: Optional[PositiveFloat] = None
    link_name: Optional[Text] = None
    pcie_gbps_bidir: Optional[PositiveFloat] = None
    aliases: list[Text] = Field(default_factory=list, max_length=1000)
    sources: list[Text] = Field(default_factory=list, max_length=1000)
    notes: Text = ""
    confidence: Optional[Text] = None
    memory_type: Optional[Text] = None
    sm_count: Optional[Annotated[int, Field(ge=1, le=1_000_000, strict=True)]] = None
    boost_clock_mhz: Optional[PositiveFloat] = None
    compute_capability: Optional[Annotated[float, Field(ge=1, le=99, allow_inf_nan=False, strict=True)]] = None
    measured: dict[Text, NonNegativeFloat] = Field(default_factory=dict)
    bandwidth: list[BandwidthPoint] = Field(default_factory=list, max_length=10_000)
    cache_bytes: Optional[PositiveFloat] = None  # the last-level cache the bandwidth sweep had to exceed
    roofline: list[RooflinePoint] = Field(default_factory=list, max_length=100_000)
    overheads: dict[Text, dict[Text, dict[Text, NonNegativeFloat]]] = Field(default_factory=dict)


def check_device_record(rec: dict, origin: str) -> dict:
    """The record, checked: UserError with one line on the first problem."""
    try:
        DeviceRecord.model_validate(rec)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "record"
        value = err.get("input")
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        raise UserError(f"{origin}: field {where!r} {err['msg'].lower()}, got {shown}; fix the field "
                        "(numbers finite and positive, see `llm-roofline hardware show h100 --json` for the "
                        "layout)") from None
    if rec.get("category", "datacenter_gpu") not in CATEGORIES:
        from .errors import closest

        raise UserError(f"{origin}: category {rec['category']!r} is not one of {', '.join(CATEGORIES)}"
                        f"{closest(str(rec['category']), CATEGORIES)}")
    unknown = [k for k in (rec.get("peak_tflops") or {}) if k not in DTYPES]
    if unknown:
        raise UserError(f"{origin}: peak_tflops names unknown dtype(s) {', '.join(map(repr, unknown))} "
                        f"(known: {', '.join(DTYPES)})")
    for key in ("bandwidth_efficiency", "compute_efficiency"):
        value = (rec.get("measured") or {}).get(key)
        if value is not None and not 0 < value <= 1:
            raise UserError(f"{origin}: field 'measured.{key}' is a fraction of the peak and must be in (0, 1], "
                            f"got {value!r}")
    for row in rec.get("roofline") or ():
        if row.get("matrix_bytes") is None and row.get("weight_bytes") is None:
            raise UserError(f"{origin}: every roofline row needs matrix_bytes (bytes of the weight matrix)")
    return rec
