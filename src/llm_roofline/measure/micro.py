"""Microbenchmarks of the machine in front of you: the ceilings the roofline needs, measured.

- bandwidth: a streaming read (a sum over the buffer: every byte read once; the fp32 matrix-vector rate beside it)
  and a copy, over buffer sizes from 1 MiB to several times the last-level cache; the read rate of the largest
  buffer is the figure decode uses, the curve shows the cache levels;
- peak matrix throughput per dtype (fp32, bf16, fp16, int8 where PyTorch has a kernel);
- the empirical roofline: one weight matrix well beyond the last-level cache multiplied by 1, 2, 4, ... vectors
  (GEMV to GEMM), attained FLOP/s and bytes/s against arithmetic intensity;
- overheads: one tiny operator's dispatch, and the decode step of a small transformers decoder at two depths, whose
  difference gives the per-layer cost and whose intercept the fixed per-step cost.
Method: warm-up, repeated runs, median with min and max, fresh random inputs (never zeros), device
synchronisation (CUDA events) on GPUs. PyTorch when installed; numpy on the CPU otherwise.
"""

from __future__ import annotations

import math

from ..errors import UserError
from .device import Timing, available_memory_bytes, last_level_cache_bytes, machine_info, time_it, torch_or_none

MIB = 1 << 20


class Backend:
    """The handful of array operations the benchmarks need, on torch (any device) or numpy (CPU)."""

    def __init__(self, device: str):
        self.device = device
        self.torch = torch_or_none()
        if self.torch is None and device != "cpu":  # pragma: no cover - resolve_device refuses this earlier
            raise UserError(f"--device {device} needs PyTorch")
        if self.torch is None:
            import numpy

            self.np = numpy
            self.rng = numpy.random.default_rng(0)
        else:  # its own random stream, seeded: the caller's (a bench's prompts, say) is left as it was
            self.gen = self.torch.Generator(device).manual_seed(0)

    @property
    def name(self) -> str:
        return f"torch {self.torch.__version__}" if self.torch else f"numpy {self.np.__version__}"

    def dtypes(self) -> list[str]:
        if self.torch is None:
            return ["fp32"]
        out = ["fp32", "bf16", "fp16"]
        if self.device == "cuda":
            out.append("int8")
        return out

    def rand(self, shape, dtype: str = "fp32"):
        if self.torch is None:
            return self.rng.random(shape, dtype="float32")
        t = self.torch
        if dtype == "int8":
            return t.randint(-64, 64, shape, dtype=t.int8, device=self.device, generator=self.gen)
        kind = {"fp32": t.float32, "bf16": t.bfloat16, "fp16": t.float16}[dtype]
        return t.rand(shape, device=self.device, dtype=t.float32, generator=self.gen).to(kind)

    def matmul(self, a, b):
        if self.torch is not None and a.dtype == self.torch.int8:
            return self.torch._int_mm(a, b)
        return a @ b

    def linear(self, x, w):
        """x @ w.T with w stored (out, in): the layout of every PyTorch linear layer, whose kernels differ
        from a plain x @ w (on CPUs by up to 2x in either direction)."""
        if self.torch is None:
            return x @ w.T
        return self.torch.nn.functional.linear(x, w)

    def copy(self, dst, src):
        if self.torch is None:
            self.np.copyto(dst, src)
        else:
            dst.copy_(src)

    def empty_like(self, x):
        return self.np.empty_like(x) if self.torch is None else self.torch.empty_like(x)

    def free(self) -> None:
        if self.torch is not None and self.device == "cuda":
            self.torch.cuda.empty_cache()


def cache_bytes(device: str) -> int:
    """The last-level cache a working set must exceed to stream from memory (GPUs: 64 MiB, beyond any L2)."""
    return last_level_cache_bytes() if device == "cpu" else 64 * MIB


def _sizes(largest: int, quick: bool) -> list[int]:
    sizes, size = [], MIB
    step = 4 if quick else 2
    while size < largest:
        sizes.append(size)
        size *= step
    return sizes + [largest]


def _large_buffer_bytes(device: str, cap: int) -> int:
    """The buffer whose read rate is the memory's: 4x the last-level cache, at least 1 GiB, at most `cap` and a
    sixth of the free memory; whole 4096-value rows."""
    largest = int(min(max(4 * cache_bytes(device), 1 << 30), available_memory_bytes(device) // 6, cap))
    return largest - largest % (4 * 4096)


def bandwidth_sweep(be: Backend, quick: bool, progress=None) -> list[dict]:
    """Read and copy rates over buffer sizes up to several times the last-level cache. The read rate is a
    streaming reduction (sum over the buffer), the memory's own speed; a matrix-vector product over the same
    bytes (gemv_gbps) is kept beside it: on some CPUs PyTorch's fp32 GEMV runs at a third of the memory's speed,
    and that is a kernel's rate, which the estimate takes from the measured matmul curves, not a bound."""
    rows = []
    for size in _sizes(_large_buffer_bytes(be.device, (2 << 30) if quick else (8 << 30)), quick):
        n = size // 4
        cols = 4096 if n >= 4096 else n
        a = be.rand((n // cols, cols))
        v = be.rand((cols,))
        repeats = 5 if quick else 11
        inner = max(1, int(64 * MIB // size))  # small buffers: repeat inside one timing to beat timer resolution
        read = time_it(lambda: [a.sum() for _ in range(inner)], be.device, repeats)
        gemv = time_it(lambda: [be.matmul(a, v) for _ in range(inner)], be.device, repeats)
        b = be.empty_like(a)
        copy = time_it(lambda: [be.copy(b, a) for _ in range(inner)], be.device, repeats)
        moved = n * 4 * inner
        rows.append({"bytes": n * 4, "read_gbps": moved / read.median / 1e9, "read_min_gbps": moved / read.max / 1e9,
                     "read_max_gbps": moved / read.min / 1e9, "gemv_gbps": moved / gemv.median / 1e9,
                     "copy_gbps": 2 * moved / copy.median / 1e9,
                     "copy_min_gbps": 2 * moved / copy.max / 1e9, "copy_max_gbps": 2 * moved / copy.min / 1e9})
        a = b = v = None  # free the buffers before the next size is allocated
        be.free()
        if progress:
            progress()
    return rows


def read_gbps_now(device: str, repeats: int = 5) -> float:
    """The memory's streaming read rate right now, the profile's method on its largest buffer (a quick profile's:
    at most 2 GiB): a second or two, to say how far a shared machine has drifted from its profile while
    something else was being measured. GB/s, the median of the repeats."""
    shape = (_large_buffer_bytes(device, 2 << 30) // (4 * 4096), 4096)
    a = Backend(device).rand(shape)
    t = time_it(lambda: a.sum(), device, repeats)
    return shape[0] * shape[1] * 4 / t.median / 1e9


def matmul_peaks(be: Backend, quick: bool, progress=None) -> dict[str, dict]:
    """Dense square matmul rate per dtype (TFLOPS)."""
    out = {}
    n = 4096 if be.device != "cpu" else (1024 if quick else 2048)
    if be.device == "cuda" and not quick:
        n = 8192
    for dtype in be.dtypes():
        try:
            a, b = be.rand((n, n), dtype), be.rand((n, n), dtype)
            if dtype == "int8":
                b = b.t().contiguous().t()  # torch._int_mm wants a column-major right operand
            t = time_it(lambda: be.matmul(a, b), be.device, repeats=3 if quick else 7)
        except (RuntimeError, TypeError, NotImplementedError):  # no kernel for this dtype on this device
            continue
        flops = 2 * n**3
        out[dtype] = {"tflops": flops / t.median / 1e12, "min_tflops": flops / t.max / 1e12,
                      "max_tflops": flops / t.min / 1e12, "n": n}
        a = b = None
        be.free()
        if progress:
            progress()
    return out


# Matrix shapes measured, as out/in: wide (a down projection), square, tall (an MLP's up and gate projections) and
# very tall (an lm_head: 16384 x 1024 at the largest size, where the rate has stopped changing with more rows).
# CPU kernels stream a tall matrix up to 20% slower than a wide one of the same size.
ASPECTS = (0.25, 1.0, 4.0, 16.0)


def empirical_roofline(be: Backend, quick: bool, dtype: str = "fp32", progress=None) -> list[dict]:
    """Weights beyond the last-level cache times 1, 2, 4, ... vectors: FLOP/s and bytes/s against intensity.
    The weights are a stack of distinct matrices in the (out, in) layout of linear layers, read one after another
    as a decode step reads its layers, at five matrix sizes (256^2 to 4096^2 elements) and four shapes (out/in
    1/4 to 16): on CPUs the rate depends on the matrix size and shape as much as on the vector count, and a
    model's matmuls look up their own size and shape. The matrices are views into one random buffer."""
    llc = cache_bytes(be.device)
    elem = 2 if dtype in ("bf16", "fp16") else 4
    target = min(max(2 * llc, 256 * MIB), available_memory_bytes(be.device) // 8, 1 << 30)
    flat = be.rand((target // elem,), dtype)
    rows = []
    vectors = (1, 2, 8, 32) if quick else (1, 2, 4, 8, 16, 32, 64, 128, 512 if be.device == "cpu" else 4096)
    # --quick skips the smallest matrices: thousands of them make a stack beyond the cache, and the Python loop
    # over them costs more time than all the larger sizes together; lookups below 512^2 take the 512^2 rate.
    for side in (512, 1024, 2048, 4096) if quick else (256, 512, 1024, 2048, 4096):
        n = side * side
        stack = [flat[i * n:(i + 1) * n] for i in range(max(2, len(flat) // n))]
        for aspect in ASPECTS:
            out_dim = int(side * aspect ** 0.5)
            shape = (out_dim, n // out_dim)
            mats = [w.reshape(shape) for w in stack]
            for m in vectors:
                x = be.rand((m, shape[1]), dtype)
                t = time_it(lambda: [be.linear(x, w) for w in mats], be.device, repeats=2 if quick else 5)
                flops = 2 * m * n * len(mats)
                moved = elem * (n + m * (shape[0] + shape[1])) * len(mats)
                rows.append({"vectors": m, "matrix_bytes": elem * n, "aspect": aspect, "out_features": shape[0],
                             "in_features": shape[1], "intensity_flop_per_byte": flops / moved,
                             "gflops": flops / t.median / 1e9, "gbps": elem * n * len(mats) / t.median / 1e9,
                             "weight_bytes": elem * n * len(mats), "dtype": dtype})
                if progress:
                    progress()
    flat = stack = mats = None
    be.free()
    return rows


def dispatch_overhead_us(be: Backend) -> Timing:
    """One tiny operator, launch to completion (µs)."""
    x = be.rand((1,))
    t = time_it(lambda: [x + 1 for _ in range(200)], be.device, repeats=9)
    return Timing(t.median / 200 * 1e6, t.min / 200 * 1e6, t.max / 200 * 1e6, t.repeats)


REFERENCE_DECODER = {"model_type": "llama", "hidden_size": 512, "intermediate_size": 1536, "num_attention_heads": 8,
                     "num_key_value_heads": 2, "vocab_size": 512, "max_position_embeddings": 256,
                     "tie_word_embeddings": False}


def reference_layers(elem_bytes: int, cache_bytes: int) -> tuple[int, int]:
    """Layer counts of the two reference decoders: the smaller one's weights at least twice the last-level cache,
    so that both stream their weights from memory as the models measured do. Across the cache boundary the
    modelled time changes rate (a 2-layer decoder fits in a 32 MiB cache, an 8-layer one does not), and the
    difference between the two, which gives the per-layer cost, would carry the cache model's error."""
    c = REFERENCE_DECODER
    h, inter = c["hidden_size"], c["intermediate_size"]
    kv = c["num_key_value_heads"] * h // c["num_attention_heads"]
    per_layer = (h * (h + 2 * kv) + h * h + 3 * h * inter) * elem_bytes  # q, k, v, o and the SwiGLU MLP
    small = min(64, max(2, math.ceil(2 * cache_bytes / per_layer)))
    return small, 3 * small


def per_layer_and_step(points: dict[int, float]) -> tuple[float, float]:
    """The line through (layers, seconds) of two decoders, both parts >= 0: where the free line's intercept is
    negative, the least-squares line through the origin (the non-negative fit), rather than the free slope with
    its intercept cut to 0, which would put all of the line's error into the per-layer cost."""
    (n1, s1), (n2, s2) = sorted(points.items())
    slope = (s2 - s1) / (n2 - n1)
    if s1 - n1 * slope >= 0:
        return max(0.0, slope), s1 - n1 * max(0.0, slope)
    return max(0.0, (n1 * s1 + n2 * s2) / (n1 * n1 + n2 * n2)), 0.0


def decoder_overhead_us(device: str, quick: bool, profile: dict | None = None) -> dict | None:
    """Per-step and per-layer overhead of the engine (transformers, eager, static cache), per weight dtype and at
    batch 1 and 8, from a reference Llama-style decoder (hidden 512) at two layer counts beyond the last-level
    cache (reference_layers). The time the profile's own streaming rates predict for its matmuls and attention
    is subtracted, so what remains is what a decoder costs beyond moving its bytes: launches, dispatch, the small
    operators between the matmuls. The slope per layer and the intercept carry over to any decoder run by the
    same engine. None without transformers."""
    try:
        import transformers  # noqa: F401

        from .bench import build_model, decode_steps
    except ImportError:
        return None
    from ..architecture import spec_from_config
    from ..hardware import Hardware
    from ..roofline import predict

    hw = Hardware.from_record({**profile, "measured": {"bandwidth_efficiency": 1.0, "compute_efficiency": 1.0}}) \
        if profile else None
    out: dict[str, dict[str, dict[str, float]]] = {}
    prompt, gen = 8, 16 if quick else 48
    cache = cache_bytes(device)
    used: dict[str, list[int]] = {}
    for weights in ("f32", "bf16"):
        torch_dtype = {"f32": "float32", "bf16": "bfloat16"}[weights]
        layers = reference_layers(4 if weights == "f32" else 2, cache)
        models = {n: build_model({**REFERENCE_DECODER, "num_hidden_layers": n, "torch_dtype": torch_dtype}, device,
                                 weights) for n in layers}
        for batch in (1, 8):
            spent = {}
            for n, model in models.items():
                measured = decode_steps(model, device, batch=batch, prompt=prompt, gen=gen,
                                        repeats=2 if quick else 3)["tpot_s"]
                modelled = 0.0
                if hw is not None:
                    spec = spec_from_config({**REFERENCE_DECODER, "num_hidden_layers": n}, f"reference-{n}")
                    modelled = predict(spec, hw, weights=weights, batch=batch, prompt=prompt, gen=gen,
                                       step_overhead_us=0).decode.tpot_ms / 1e3
                spent[n] = max(0.0, measured - modelled)
            per_layer, per_step = per_layer_and_step(spent)
            out.setdefault(weights, {})[str(batch)] = {"step_overhead_us": per_step * 1e6,
                                                        "layer_overhead_us": per_layer * 1e6}
        used[weights] = list(layers)
    return {**out["f32"]["1"], "by_dtype": out, "reference_layers": used}


NOISY = 0.15  # repeats of one measurement that spread more than this (of their best) mean a busy machine


def noise_warnings(large: dict, peaks: dict) -> list[str]:
    """What the repeats say about the machine: a spread over NOISY means other work competed for it."""
    out = []
    lo, hi = large["read_min_gbps"], large["read_max_gbps"]
    if hi and (hi - lo) / hi > NOISY:
        out.append(f"memory read repeats spread {lo:,.1f}-{hi:,.1f} GB/s ({100 * (hi - lo) / hi:.0f}%): the machine "
                   "was busy, so the profile's bandwidth may be low; re-run measure on an idle machine")
    for dtype, m in peaks.items():
        if m.get("max_tflops") and (m["max_tflops"] - m["min_tflops"]) / m["max_tflops"] > NOISY:
            out.append(f"matmul {dtype} repeats spread {m['min_tflops']:,.3f}-{m['max_tflops']:,.3f} TFLOPS: the "
                       "machine was busy; re-run on an idle machine")
    return out


def measure(device: str, quick: bool = False, progress_factory=None) -> dict:
    """Measure a device and return its profile (a hardware record `predict --hardware` accepts)."""
    be = Backend(device)
    bar = progress_factory() if progress_factory else None

    def tick(label):
        def step():
            if bar:
                bar(label)
        return step

    bandwidth = bandwidth_sweep(be, quick, tick("memory bandwidth"))
    peaks = matmul_peaks(be, quick, tick("matmul peaks"))
    roofline = [row for dtype in ("fp32", "bf16") if dtype in peaks
                for row in empirical_roofline(be, quick, dtype, tick("empirical roofline"))]
    dispatch = dispatch_overhead_us(be)
    info = machine_info(device)
    large = bandwidth[-1]
    peak_tflops = {d: v["tflops"] for d, v in peaks.items()}
    if "bf16" in peak_tflops or "fp16" in peak_tflops:
        # The catalog key "fp16" means the 16-bit matmul rate; formats that run bf16 look up "bf16" first.
        peak_tflops.setdefault("fp16", peak_tflops.get("bf16"))
    ridge = {d: t * 1e12 / (large["read_gbps"] * 1e9) for d, t in peak_tflops.items() if t}
    category = {"cpu": "desktop_cpu", "mps": "apple_soc", "cuda": "datacenter_gpu"}[device]
    decoder = decoder_overhead_us(device, quick, {"bandwidth_gbps": large["read_gbps"], "memory_gb": 1e3,
                                                  "peak_tflops": peak_tflops, "bandwidth": bandwidth,
                                                  "cache_bytes": cache_bytes(device),
                                                  "roofline": roofline, "id": "measuring", "category": category})
    if bar:
        bar("overheads")
    measured_overheads = decoder or {"step_overhead_us": 0.0, "layer_overhead_us": 25 * dispatch.median}
    name = info.get("gpu_name") or info["cpu_model"]
    warnings = noise_warnings(large, peaks)
    return {
        "warnings": warnings,
        "kind": "llm-roofline measured profile",
        "id": f"measured-{device}",
        "name": f"{name} (measured, {device})",
        "category": category,
        "vendor": "",
        "machine": info,
        "backend": be.name,
        "quick": quick,
        "memory_gb": info["memory_bytes"] / 1e9,
        "bandwidth_gbps": large["read_gbps"],
        "bandwidth_spread_gbps": [large["read_min_gbps"], large["read_max_gbps"]],
        "copy_gbps": large["copy_gbps"],
        "bandwidth": bandwidth,
        "cache_bytes": cache_bytes(device),
        "peak_tflops": peak_tflops,
        "matmul": peaks,
        "ridge_point_flop_per_byte": ridge.get("fp32"),
        "ridge_points": ridge,
        "roofline": roofline,
        "dispatch_overhead_us": dispatch.to_dict(),
        "step_overhead_us": measured_overheads["step_overhead_us"],
        "layer_overhead_us": measured_overheads["layer_overhead_us"],
        "decoder_overhead": decoder,
        # The estimate of a measured device: these figures are what this machine reaches, so the achievable
        # fractions are 1 and the overheads are the measured ones.
        "measured": {"bandwidth_efficiency": 1.0, "compute_efficiency": 1.0,
                     "step_overhead_us": measured_overheads["step_overhead_us"],
                     "layer_overhead_us": measured_overheads["layer_overhead_us"]},
        "overheads": (decoder or {}).get("by_dtype"),
        "sources": [f"llm-roofline measure --device {device}{' --quick' if quick else ''}, {info['date']}"],
        "confidence": "measured",
        "notes": f"largest buffer {large['bytes'] / MIB:,.0f} MiB; last-level cache "
                 f"{info['last_level_cache_bytes'] / MIB:,.0f} MiB",
    }


__all__ = ["measure", "bandwidth_sweep", "matmul_peaks", "empirical_roofline", "Backend"]
