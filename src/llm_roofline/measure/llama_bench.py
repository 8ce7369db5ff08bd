"""llama.cpp on this machine, through llama-cpp-python, beside the roofline: llama-bench's two measurements.

  pp  prompt processing: `prompt` tokens evaluated in one call (llama.cpp batches them by n_batch) on top of a KV
      cache `depth` deep; tokens per second.
  tg  token generation: `gen` tokens evaluated one at a time after `depth` cached ones; tokens per second.
Each is repeated (mean and standard deviation, as llama-bench reports them) after one warm-up; the cache is
cleared and refilled to the depth before every run.

Beside it, from predict() on the GGUF itself (its exact tensor bytes) and the machine's measured profile
(`llm-roofline measure`): the ceiling streams the step's bytes at the fastest rate any kernel reached on this
machine (the profile's read, or llama.cpp's own) and leaves compute unbounded (no published peak); the estimate
takes the step's bytes and FLOPs at the rates llama.cpp's own kernels reached here on reference files of other
shapes (llama_kernels), never on the file being benchmarked. Where a type's kernels stream well below the memory's
read rate (unpacking its blocks costs more than reading them), the row says the kernels are the bound.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from ..errors import UserError

def check_llama_cpp():
    try:
        import llama_cpp
    except ImportError:
        raise UserError("bench --engine llama.cpp needs llama-cpp-python: pip install 'llm-roofline[llama]' (it "
                        "compiles llama.cpp, about ten minutes on two cores)") from None
    return llama_cpp


def check_gguf_path(path: str | Path) -> Path:
    path = Path(path)
    if path.suffix.lower() != ".gguf" or not path.is_file():
        raise UserError(f"bench --engine llama.cpp runs a .gguf file; {str(path)!r} is not one (write one with "
                        "benchmarks/llama_cpp_cpu.py, or pass a llama.cpp / Ollama / LM Studio model file)")
    return path


def _run(llm, tokens: list[int], depth: int, timed: list[int], one_by_one: bool) -> float:
    from .llama_kernels import clear_cache

    clear_cache(llm)
    if depth:
        llm.eval(tokens[:depth])
    t0 = time.perf_counter()
    if one_by_one:
        for tok in timed:
            llm.eval([tok])
    else:
        llm.eval(timed)
    return time.perf_counter() - t0


def estimate_from_kernels(path: Path, p, rates, read_gbps: float, n_layers: int, prompt: int) -> dict:
    """tg and pp of a prediction `p` of the file at `path` from llama.cpp's measured kernel rates: each tensor's
    share of the step's weight bytes at the rate of its ggml type at its row length, plus the per-token step and
    layer costs, plus the step's attention FLOPs (which read the KV cache) at the attention rate; the prompt's
    matmul FLOPs in the tensors' shares of the elements at their prefill rates, plus its attention FLOPs at the
    prompt's attention rate. Types no reference stands for stream at the memory's read rate (bench_llama_cpp's
    notes say which)."""
    from .llama_kernels import DEQUANT_BOUND, phase_attention_flops, reference_type, step_tensors

    tensors = [(reference_type(t), t, b, e, r) for t, b, e, r in step_tensors(path)]
    total_b = sum(b for _, _, b, _, _ in tensors)
    matrices = [(ref, e, r) for ref, t, _, e, r in tensors if t != "F32"]
    total_e = sum(e for _, e, _ in matrices)
    attention_decode, attention_prefill = (phase_attention_flops(p, ph) for ph in ("decode", "prefill"))
    weights_s = sum(p.decode.weight_bytes_per_step * b / total_b
                    / ((rates.decode_at(ref, r) if ref in rates.decode_gbps else read_gbps) * 1e9)
                    for ref, _, b, _, r in tensors)
    tg_s = (rates.step_us * 1e-6 + n_layers * rates.layer_us * 1e-6 + weights_s
            + attention_decode / (rates.attention_decode_gflops * 1e9))
    fastest = max(v for vs in rates.prefill_gflops.values() for v in vs)
    matmul_flops = p.prefill.flops - attention_prefill
    pp_s = sum(matmul_flops * e / total_e
               / ((rates.prefill_at(ref, r) if ref in rates.prefill_gflops else fastest) * 1e9)
               for ref, e, r in matrices) + attention_prefill / (rates.attention_prefill_gflops * 1e9)
    slow = {}
    for ref, t, b, _, r in tensors:
        if ref in rates.decode_gbps and rates.decode_at(ref, r) < DEQUANT_BOUND * read_gbps:
            slow[t] = slow.get(t, 0) + b
    bound = [f"{t} streams {max(rates.decode_gbps[reference_type(t)]):,.1f} GB/s" for t, b in slow.items()
             if b > 0.2 * total_b]
    return {"tg_tok_s": 1 / tg_s, "pp_tok_s": prompt / pp_s, "dequant_bound": bound}


def bench_llama_cpp(path: str | Path, hardware, prompt: int = 512, gen: int = 128, depths: tuple[int, ...] = (0,),
                    threads: int | None = None, repeats: int = 3, progress=None, kernels=None) -> dict:
    """llama-bench's pp and tg at each depth, measured, beside the ceiling and an estimate from llama.cpp's own
    kernel rates measured first on reference files of other shapes (llama_kernels; `kernels`: rates measured
    before, with the same threads, for every type the file needs)."""
    import os
    import random

    from ..architecture import load_model
    from ..engines import llama_cpp_view
    from ..errors import require_positive
    from ..hardware import load_hardware
    from ..roofline import predict
    from . import llama_kernels

    for name, value in (("prompt", prompt), ("gen", gen), ("repeats", repeats)):
        require_positive(name, value)
    if not depths or any(d < 0 for d in depths):
        raise UserError("--depth takes whole numbers >= 0, e.g. 0,4096")
    path = check_gguf_path(path)
    spec = load_model(path)
    hw = load_hardware(hardware)
    if not hw.measured:
        raise UserError("bench needs a measured profile: pass --hardware PROFILE.json from `llm-roofline measure`")
    hw = llama_cpp_view(hw)
    threads = threads or os.cpu_count() or 1
    llama_cpp = check_llama_cpp()
    types, unmeasured = llama_kernels.needed_types(path)
    rates = kernels
    if rates is None or rates.threads != threads or not set(types) <= set(rates.decode_gbps):
        rates = llama_kernels.measure_kernels(llama_cpp, types, threads, repeats=repeats,
                                              references=llama_kernels.REFERENCES,
                                              progress=(lambda t: progress(0, 1, t)) if progress else None)
    fastest_gbps = max([hw.bandwidth_gbps, *(v for vs in rates.decode_gbps.values() for v in vs)])
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
        rates_measured = [n / _run(llm, tokens, depth, timed, kind == "tg") for _ in range(repeats)]
        if progress is not None:
            progress(done, len(steps), f"{kind}{n} @ d{depth}")
        if kind == "pp":  # the prompt on top of `depth` cached tokens
            p = predict(spec, hw, batch=1, prompt=prompt, context=depth + prompt, gen=1)
        else:
            p = predict(spec, hw, batch=1, prompt=max(depth, 1), context=depth, gen=gen)
        est = estimate_from_kernels(path, p, rates, hw.bandwidth_gbps, spec.n_layers, prompt)
        mean = statistics.mean(rates_measured)
        if kind == "pp":
            ceiling, estimate, bound = p.prefill.ceiling_tok_s, est["pp_tok_s"], \
                "compute (the ceiling bounds memory only)"
        else:
            # the fastest stream seen on this machine: the profile's read or llama.cpp's own kernels
            ceiling = max(p.decode.ceiling_tok_s, fastest_gbps * 1e9 / p.decode.bytes_per_step)
            estimate = est["tg_tok_s"]
            bound = ("dequantisation-bound kernels (" + ", ".join(est["dequant_bound"]) + f" against a "
                     f"{hw.bandwidth_gbps:,.1f} GB/s read)") if est["dequant_bound"] else p.decode.bound
        row = {"test": f"{kind}{n}", "depth": depth, "measured_tok_s": mean,
               "measured_sd_tok_s": statistics.stdev(rates_measured) if len(rates_measured) > 1 else 0.0,
               "ceiling_tok_s": ceiling, "estimate_tok_s": estimate, "error_pct": 100 * (estimate - mean) / mean,
               "bound": bound}
        if kind == "tg":
            row["mbu"] = p.decode.bytes_per_step * mean / (hw.bandwidth_gbps * 1e9)
        rows.append(row)
    del llm
    return {"model": spec.id, "file": str(path), "weights": spec.checkpoint_dtype, "engine": "llama.cpp",
            "llama_cpp_python": getattr(llama_cpp, "__version__", "?"), "threads": threads, "repeats": repeats,
            "hardware": hw.id, "hardware_name": hw.name, "bandwidth_gbps": hw.bandwidth_gbps,
            "weight_bytes": p.model.weight_bytes, "kernels": rates.to_dict(),
            "notes": [f"{t}: no reference kernel (llama_kernels writes {', '.join(llama_kernels.MEASURABLE)}); "
                      f"streamed at the profile's read rate in the estimate" for t in unmeasured], "rows": rows}
