"""llama.cpp on this machine, through llama-cpp-python, beside the roofline: llama-bench's two measurements.

  pp  prompt processing: `prompt` tokens evaluated in one call (llama.cpp batches them by n_batch) on top of a KV
      cache `depth` deep; tokens per second.
  tg  token generation: `gen` tokens evaluated one at a time after `depth` cached ones; tokens per second.
Each is repeated (mean and standard deviation, as llama-bench reports them) after one warm-up; the cache is
cleared and refilled to the depth before every run. The prediction beside it is predict() on the GGUF itself
(its exact tensor bytes) and the machine's measured profile (`llm-roofline measure`): the ceiling streams the
step's bytes at the measured read rate and computes at the rates llama.cpp's kernels can reach on it
(llama_cpp_device); the estimate applies llama.cpp's efficiency profile (fitted on public measurements by
`calibrate`, never on this run) to that machine.

Where a quantised type's CPU kernels cannot keep up with the memory (unpacking blocks costs more than reading
them), tg falls well below the memory-bound estimate: the row says "compute-bound kernels" instead of
pretending the bandwidth model explains it.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from ..errors import UserError

ENGINE = "llama.cpp"  # the estimate: llama.cpp's efficiency profile, fitted on public measurements
SLOWER_THAN_MEMORY = 0.6  # measured below this fraction of the memory-bound estimate: the kernels are the bound


def check_llama_cpp():
    try:
        import llama_cpp
    except ImportError:
        raise UserError("bench --engine llama.cpp needs llama-cpp-python: pip install 'llm-roofline[llama]' (it "
                        "compiles llama.cpp, about ten minutes on two cores)") from None
    return llama_cpp


def llama_cpp_device(hw):
    """The measured machine as llama.cpp's CPU kernels use it. They multiply F16 (and BF16) weights in fp32,
    converting with F16C, and quantised blocks with integer dot products on the same vector units, so PyTorch's
    own fp16 kernels (a fraction of its sgemm on CPUs) say nothing about them. No published figure bounds these
    rates on a measured machine (llama.cpp can beat PyTorch's sgemm there), so the ceiling leaves compute
    unbounded and bounds the memory stream only; the estimate assumes the profile's fp32 rate for the float paths
    and twice that for the integer dot products (AVX2's byte dot products pack twice the lanes). PyTorch's matmul
    curves and per-step overheads are PyTorch's, not llama.cpp's: left out."""
    from dataclasses import replace

    fp32 = hw.peak_tflops.get("fp32")
    if not fp32:
        raise UserError(f"{hw.id} has no measured fp32 rate; measure the machine again (llm-roofline measure)")
    peaks = {**hw.peak_tflops, "fp16": fp32, "bf16": fp32, "int8": 2 * fp32}
    return replace(hw, peak_tflops=peaks, matmul_curves={}, overheads={}, estimated_peaks=tuple(sorted(peaks)))


def check_gguf_path(path: str | Path) -> Path:
    path = Path(path)
    if path.suffix.lower() != ".gguf" or not path.is_file():
        raise UserError(f"bench --engine llama.cpp runs a .gguf file; {str(path)!r} is not one (write one with "
                        "benchmarks/llama_cpp_cpu.py, or pass a llama.cpp / Ollama / LM Studio model file)")
    return path


def _run(llm, tokens: list[int], depth: int, timed: list[int], one_by_one: bool) -> float:
    llm.reset()
    llm._ctx.memory_clear(True) if hasattr(llm._ctx, "memory_clear") else llm._ctx.kv_cache_clear()
    if depth:
        llm.eval(tokens[:depth])
    t0 = time.perf_counter()
    if one_by_one:
        for tok in timed:
            llm.eval([tok])
    else:
        llm.eval(timed)
    return time.perf_counter() - t0


def bench_llama_cpp(path: str | Path, hardware, prompt: int = 512, gen: int = 128, depths: tuple[int, ...] = (0,),
                    threads: int | None = None, repeats: int = 3, progress=None) -> dict:
    """llama-bench's pp and tg at each depth, measured and predicted."""
    import os
    import random

    from ..architecture import load_model
    from ..errors import require_positive
    from ..hardware import load_hardware
    from ..roofline import predict

    for name, value in (("prompt", prompt), ("gen", gen), ("repeats", repeats)):
        require_positive(name, value)
    if not depths or any(d < 0 for d in depths):
        raise UserError("--depth takes whole numbers >= 0, e.g. 0,4096")
    path = check_gguf_path(path)
    spec = load_model(path)
    hw = load_hardware(hardware)
    if not hw.measured:
        raise UserError("bench needs a measured profile: pass --hardware PROFILE.json from `llm-roofline measure`")
    hw = llama_cpp_device(hw)
    threads = threads or os.cpu_count() or 1
    llama_cpp = check_llama_cpp()
    n_ctx = max(depths) + max(prompt, gen) + 16
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads,
                          n_batch=512, n_ubatch=512, verbose=False, logits_all=False)
    rng = random.Random(0)
    tokens = [rng.randrange(3, spec.vocab_size) for _ in range(n_ctx)]
    rows = []
    steps = [(d, kind) for d in depths for kind in ("pp", "tg")]
    for done, (depth, kind) in enumerate(steps, 1):
        n = prompt if kind == "pp" else gen
        timed = tokens[depth:depth + n]
        _run(llm, tokens, depth, timed[:8], kind == "tg")  # warm-up
        rates = [n / _run(llm, tokens, depth, timed, kind == "tg") for _ in range(repeats)]
        if progress is not None:
            progress(done, len(steps), f"{kind}{n} @ d{depth}")
        if kind == "pp":  # the prompt on top of `depth` cached tokens
            p = predict(spec, hw, batch=1, prompt=prompt, context=depth + prompt, gen=1, engine=ENGINE)
            ceiling, estimate = p.prefill.ceiling_tok_s, p.prefill.estimate_tok_s
            moved = p.prefill.bytes
        else:
            p = predict(spec, hw, batch=1, prompt=max(depth, 1), context=depth, gen=gen, engine=ENGINE)
            ceiling, estimate = p.decode.ceiling_tok_s, p.decode.estimate_tok_s
            moved = p.decode.bytes_per_step
        mean = statistics.mean(rates)
        row = {"test": f"{kind}{n}", "depth": depth, "measured_tok_s": mean,
               "measured_sd_tok_s": statistics.stdev(rates) if len(rates) > 1 else 0.0,
               "ceiling_tok_s": ceiling, "estimate_tok_s": estimate, "error_pct": 100 * (estimate - mean) / mean,
               "bound": "compute (the ceiling bounds memory only)" if kind == "pp" else p.decode.bound}
        if kind == "tg":
            row["mbu"] = moved * mean / (hw.bandwidth_gbps * 1e9)
            if mean < SLOWER_THAN_MEMORY * estimate:
                row["bound"] = "compute-bound kernels"
        rows.append(row)
    del llm
    return {"model": spec.id, "file": str(path), "weights": spec.checkpoint_dtype, "engine": "llama.cpp",
            "llama_cpp_python": getattr(llama_cpp, "__version__", "?"), "threads": threads, "repeats": repeats,
            "hardware": hw.id, "hardware_name": hw.name, "bandwidth_gbps": hw.bandwidth_gbps,
            "weight_bytes": p.model.weight_bytes, "rows": rows}
