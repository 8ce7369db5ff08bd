"""llama.cpp's own kernels on this machine, measured on reference GGUFs of generic shapes (never the model being
benchmarked), the way `measure` times PyTorch's matmuls at generic shapes:

- per ggml type and row length, the rate at which batch-1 decode streams a step's weights (GB/s): one token at a
  time through reference models whose every layer matrix is of that type, at two widths (1024 and 2048: llama.cpp's
  kernels walk a matrix row by row, and long rows run faster), each larger than the last-level cache, less the
  per-token cost below. A type whose kernels stream well below the memory's read rate is dequantisation-bound here;
- per ggml type and row length, the prompt-processing rate (GFLOP/s) on the same references;
- the per-token cost of a step that is not streaming (building the graph, the threads' barriers between its
  nodes): one-token steps of two tiny models of 1 and 5 layers, whose weights sit in cache; the slope is the cost
  per layer, the intercept the cost per step;
- attention over the KV cache (GFLOP/s, decode and prompt): the shorter reference's one-token steps and prompt on
  top of ATTENTION_DEPTH cached tokens against the same on an empty cache; the time it adds, over the attention
  FLOPs it adds (from the compiled step). llama.cpp's CPU attention (no flash attention by default) runs far
  below its matmuls, so at depth it, not the KV cache's bytes, sets the pace.

A model's decode step then takes the step cost, plus each tensor's bytes at the rate of its type at its row length
(log-log between the two references' mean row lengths, clamped outside them), plus its attention FLOPs at the
attention rate; its prompt takes its matmul FLOPs in the same shares, plus its attention FLOPs likewise.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import UserError
from . import synthetic_gguf

# layer matrices 256 x 1024 to 4096 x 1024, 12 layers (174 M weights), and 512 x 2048 to 8192 x 2048, 4 layers
# (243 M): whole 256-value blocks for the K types, 98-486 MB a file, beyond the last-level cache of the CPUs this
# runs on
REFERENCES = (synthetic_gguf.Dims("reference-1024", 1024, 12, 16, 4, 4096, 512),
              synthetic_gguf.Dims("reference-2048", 2048, 4, 32, 8, 8192, 512))
STEP_REFERENCES = (synthetic_gguf.Dims("step-1", 256, 1, 4, 2, 512, 512),
                   synthetic_gguf.Dims("step-5", 256, 5, 4, 2, 512, 512))
MEASURABLE = ("F16", "Q8_0", "Q4_0", "Q4_K", "Q5_0")  # the types synthetic_gguf writes
ATTENTION_DEPTH = 2048  # cached tokens for the attention rates
DEQUANT_BOUND = 0.6  # a type streaming below this fraction of the memory's read rate: its kernels are the bound


@dataclass(frozen=True)
class KernelRates:
    sizes: tuple  # the references' mean row lengths (elements), ascending
    decode_gbps: dict  # ggml type -> GB/s at which decode streams weights of that type, one per size
    prefill_gflops: dict  # ggml type -> GFLOP/s of prompt processing, one per size
    step_us: float  # per token, whatever the model
    layer_us: float  # per token and layer
    threads: int
    attention_decode_gflops: float  # attention over the KV cache, one-token steps
    attention_prefill_gflops: float  # and in a prompt

    def to_dict(self) -> dict:
        return asdict(self)

    def decode_at(self, qtype: str, row_length: float) -> float:
        return _interpolate(self.sizes, self.decode_gbps[qtype], row_length)

    def prefill_at(self, qtype: str, row_length: float) -> float:
        return _interpolate(self.sizes, self.prefill_gflops[qtype], row_length)


def describe(rates: dict) -> str:
    """One line: each type's decode and prompt rates at the references' sizes, and the per-token costs."""
    def per_type(table: dict, unit: str, digits: int) -> str:
        return ", ".join(f"{q} {' / '.join(f'{v:,.{digits}f}' for v in vs)} {unit}" for q, vs in table.items())

    sizes = " / ".join(f"{x:,.0f}" for x in rates["sizes"])
    return (f"decode {per_type(rates['decode_gbps'], 'GB/s', 1)}; prompt {per_type(rates['prefill_gflops'], 'GFLOP/s', 0)}"
            f" (rows of {sizes} values); attention {rates['attention_decode_gflops']:,.1f} / "
            f"{rates['attention_prefill_gflops']:,.0f} GFLOP/s (decode / prompt); {rates['step_us']:,.0f} µs a step + "
            f"{rates['layer_us']:,.0f} µs a layer")


def _interpolate(xs, ys, x: float) -> float:
    """Log-log between the measured points, clamped outside them."""
    import math

    if x <= xs[0]:
        return ys[0]
    if x >= xs[-1]:
        return ys[-1]
    i = next(k for k in range(1, len(xs)) if x <= xs[k])
    f = (math.log(x) - math.log(xs[i - 1])) / (math.log(xs[i]) - math.log(xs[i - 1]))
    return math.exp(math.log(ys[i - 1]) + f * (math.log(ys[i]) - math.log(ys[i - 1])))


def _median_s(run, repeats: int) -> float:
    run()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _load(llama_cpp, path: Path, threads: int, n_ctx: int):
    return llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads,
                           n_batch=512, n_ubatch=512, verbose=False)


def clear_cache(llm) -> None:
    """An empty KV cache and token history (llama-cpp-python's newer and older context APIs)."""
    llm.reset()
    llm._ctx.memory_clear(True) if hasattr(llm._ctx, "memory_clear") else llm._ctx.kv_cache_clear()


def _decode_s(llm, tokens: int, repeats: int) -> float:
    """Seconds per token of one-token steps from an empty cache."""
    def run():
        clear_cache(llm)
        for tok in range(3, 3 + tokens):
            llm.eval([tok])
    return _median_s(run, repeats) / tokens


def _prefill_s(llm, prompt: int, repeats: int) -> float:
    def run():
        clear_cache(llm)
        llm.eval(list(range(3, 3 + prompt)))
    return _median_s(run, repeats)


def _rewind(llm, n: int) -> None:
    """Keep the first n cached tokens."""
    llm._ctx.kv_cache_seq_rm(-1, n, -1)
    llm.n_tokens = n


def phase_attention_flops(p, phase: str) -> float:
    """FLOPs of a prediction's attention operators in one phase ("decode": one step, "prefill": the prompt)."""
    return sum(o.flops for o in p.operators if o.phase == phase and o.kind == "attention")


def attention_flops(path: Path, depth: int, tokens: int, one_by_one: bool) -> float:
    """The attention FLOPs (QK and PV) of `tokens` new tokens on top of `depth` cached ones, from the compiled
    step of the file's model (FLOPs depend on the model and the workload, not on the device named)."""
    from ..roofline import predict

    if one_by_one:  # decode: per step, averaged over the tokens
        p = predict(path, "h100", batch=1, prompt=max(depth, 1), context=depth, gen=tokens)
        return tokens * phase_attention_flops(p, "decode")
    p = predict(path, "h100", batch=1, prompt=tokens, context=depth + tokens, gen=1)
    return phase_attention_flops(p, "prefill")


def _attention_rates(llama_cpp, path: Path, threads: int, tokens: int, prompt: int, repeats: int) -> tuple:
    """(decode, prefill) GFLOP/s of attention: the time that ATTENTION_DEPTH cached tokens add, over the FLOPs."""
    depth = ATTENTION_DEPTH
    llm = _load(llama_cpp, path, threads, depth + max(tokens, prompt) + 8)
    fill = [3 + i % 500 for i in range(depth + max(tokens, prompt))]
    out = []
    for n, one_by_one in ((tokens, True), (prompt, False)):
        def run(start: int):
            _rewind(llm, start)
            for tok in fill[start:start + n] if one_by_one else [fill[start:start + n]]:
                llm.eval([tok] if one_by_one else tok)
        for _ in range(3):  # a shared machine can stall one timing: what depth adds must be seen to add time
            seconds = []
            for start in (0, depth):
                if start:  # fill the cache to the depth once; each run rewinds to it
                    _rewind(llm, 0)
                    llm.eval(fill[:depth])
                seconds.append(_median_s(lambda: run(start), repeats))
            extra_s = seconds[1] - seconds[0]
            if extra_s > 0.05 * seconds[0]:
                break
        else:
            raise UserError(f"llama.cpp's attention could not be timed: {depth} cached tokens added "
                            f"{extra_s * 1e3:+.2f} ms to {seconds[0] * 1e3:.2f} ms three times; the machine's speed "
                            "varied too much, run again on a quieter machine")
        flops = attention_flops(path, depth, n, one_by_one) - attention_flops(path, 0, n, one_by_one)
        out.append(flops / extra_s / 1e9)
    del llm
    return tuple(out)


def step_tensors(path: Path) -> list[tuple[str, int, int, int]]:
    """(ggml type, bytes, elements, row length) of every tensor a decode step reads from a GGUF: all but the
    embedding table (one row of it is read), which is also the output head where the file has no output.weight."""
    import gguf

    tensors = gguf.GGUFReader(str(path)).tensors
    tied = not any(t.name == "output.weight" for t in tensors)
    return [(t.tensor_type.name, int(t.n_bytes), int(t.n_elements), int(t.shape[0])) for t in tensors
            if t.name != "token_embd.weight" or tied]


def mean_row_length(path: Path) -> float:
    """The bytes-weighted geometric mean of the matrices' row lengths: a reference's size."""
    import math

    mats = [(b, r) for t, b, _, r in step_tensors(path) if t != "F32"]
    return math.exp(sum(b * math.log(r) for b, r in mats) / sum(b for b, _ in mats))


def step_bytes(path: Path) -> dict[str, int]:
    """The bytes of each ggml type a decode step reads (step_tensors)."""
    out: dict[str, int] = {}
    for qtype, nbytes, _, _ in step_tensors(path):
        out[qtype] = out.get(qtype, 0) + nbytes
    return out


def step_elements(path: Path) -> dict[str, int]:
    """Weight elements of each ggml type that a prompt's matmuls multiply (the matrices of step_tensors)."""
    out: dict[str, int] = {}
    for qtype, _, elements, _ in step_tensors(path):
        if qtype != "F32":  # F32 tensors are the norms
            out[qtype] = out.get(qtype, 0) + elements
    return out


def measure_kernels(llama_cpp, types, threads: int, tokens: int = 32, prompt: int = 256, repeats: int = 3,
                    references: tuple = REFERENCES, progress=None) -> KernelRates:
    """The rates above for each of `types` (those synthetic_gguf can write), with `threads` threads."""
    with tempfile.TemporaryDirectory(prefix="llama-kernels-") as tmp:
        per_token = []
        for dims in STEP_REFERENCES:
            path = synthetic_gguf.write(Path(tmp) / f"{dims.name}.gguf", dims, "F16")
            llm = _load(llama_cpp, path, threads, tokens + 8)
            per_token.append(_decode_s(llm, tokens, repeats))
            del llm
        (l1, s1), (l2, s2) = ((d.layers, s) for d, s in zip(STEP_REFERENCES, per_token))
        layer_s = max((s2 - s1) / (l2 - l1), 0.0)
        step_s = max(s1 - l1 * layer_s, 0.0)
        attention = (0.0, 0.0)
        decode: dict[str, list[float]] = {t: [] for t in types}
        prefill: dict[str, list[float]] = {t: [] for t in types}
        sizes = []
        for reference in sorted(references, key=lambda d: d.hidden):
            for qtype in types:
                path = synthetic_gguf.write(Path(tmp) / f"{reference.name}-{qtype}.gguf", reference, qtype)
                if qtype == types[0]:
                    sizes.append(mean_row_length(path))
                    if len(sizes) == 1:  # the shorter reference: attention over ATTENTION_DEPTH cached tokens
                        attention = _attention_rates(llama_cpp, path, threads, tokens, prompt, repeats)
                llm = _load(llama_cpp, path, threads, max(tokens, prompt) + 8)
                t = _decode_s(llm, tokens, repeats) - step_s - reference.layers * layer_s
                decode[qtype].append(sum(step_bytes(path).values()) / max(t, 1e-9) / 1e9)
                flops = 2 * prompt * sum(step_elements(path).values())
                prefill[qtype].append(flops / _prefill_s(llm, prompt, repeats) / 1e9)
                del llm
                path.unlink()
                if progress is not None:
                    progress(f"{reference.name} {qtype}")
    return KernelRates(tuple(sizes), decode, prefill, step_s * 1e6, layer_s * 1e6, threads, *attention)


def reference_type(qtype: str) -> str | None:
    """The measured type standing in for `qtype`: itself, F16 for the other float types (the same converting
    kernel), or None where no reference can be written (K-quants other than Q4_K, I-quants)."""
    if qtype in MEASURABLE:
        return qtype
    return "F16" if qtype in ("F32", "BF16") else None


def needed_types(path: Path) -> tuple[list[str], list[str]]:
    """(reference types to measure for a file, types in it that no reference stands for)."""
    kinds = step_bytes(path)
    refs = sorted({reference_type(t) for t in kinds if reference_type(t)} | {"F16"})  # F16: the KV cache's rate
    missing = sorted(t for t in kinds if reference_type(t) is None)
    return refs, missing
