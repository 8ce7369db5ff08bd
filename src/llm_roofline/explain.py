"""The chain behind each headline figure, with the numbers filled in, and what would move it."""

from __future__ import annotations

from .roofline import Prediction


def _gb(x: float) -> str:
    return f"{x / 1e9:,.1f} GB" if x >= 1e8 else f"{x / 1e6:,.2f} MB"


def _flops(x: float) -> str:
    return f"{x / 1e12:,.2f} TFLOP" if x >= 1e11 else f"{x / 1e9:,.2f} GFLOP"


def explain(p: Prediction) -> list[str]:
    d, pf, m, hw, e, w = p.decode, p.prefill, p.memory, p.hardware, p.efficiency, p.workload
    peak = hw.matmul_tflops or 0
    ridge = hw.ridge_point_flop_per_byte
    per_dev = " per device" if w.tp > 1 else ""
    lines = [
        f"Decode, one step of {w.batch} sequence(s) at an average KV depth of {w.context + w.gen / 2:,.0f} tokens"
        f"{per_dev}:",
        f"  bytes per step {_gb(d.bytes_per_step)} (weights {_gb(d.weight_bytes_per_step)}, KV cache "
        f"{_gb(d.kv_bytes_per_step)}) ÷ {hw.bandwidth_gbps:,.0f} GB/s = "
        f"{d.bytes_per_step / hw.bandwidth_gbps / 1e6:,.2f} ms",
        f"  FLOPs per step {_flops(d.flops_per_step)} ÷ {peak:,.1f} TFLOPS ({hw.matmul_dtype}) = "
        f"{d.flops_per_step / (peak * 1e12) * 1e3 if peak else 0:,.3f} ms"
        f"  (intensity {d.intensity_flop_per_byte:,.1f} FLOP/B vs ridge point "
        f"{ridge:,.0f} FLOP/B)" if ridge else "  (no compute peak published)",
        *([f"  the ceiling reads {_gb(d.ceiling_bytes_per_step)}: the fewest experts the batch can touch (top-k per "
           f"layer); the {_gb(d.bytes_per_step)} above are the uniform-routing expectation the estimate reads"]
          if d.ceiling_bytes_per_step and d.ceiling_bytes_per_step < d.bytes_per_step * (1 - 1e-9) else []),
        f"  ceiling: Σ over operators of max(FLOPs/peak, bytes/bandwidth) = {d.compute_ms:,.2f} ms compute-bound + "
        f"{d.memory_ms:,.2f} ms memory-bound" + (f" + {d.link_ms:,.2f} ms all-reduce" if d.link_ms else "")
        + f" = {d.tpot_floor_ms:,.2f} ms → {d.ceiling_tok_s:,.1f} tok/s per sequence"
        f" ({d.ceiling_throughput_tok_s:,.1f} tok/s over the batch)",
        f"  estimate: bytes ÷ ({hw.bandwidth_gbps:,.0f} GB/s × {e.bandwidth:.2f}), FLOPs ÷ ({peak:,.1f} TFLOPS × "
        f"{e.compute:.2f}) per operator, + {e.step_overhead_us:,.0f} µs step overhead = {d.tpot_ms:,.2f} ms → "
        f"{d.estimate_tok_s:,.1f} tok/s per sequence ({e.source})",
    ]
    if d.bound == "memory":
        margin = (d.memory_ms + d.link_ms) / d.compute_ms if d.compute_ms else None
        what = "the KV cache" if d.memory_bound_by == "kv_cache" else "the weights"
        lines.append(f"  bound: memory ({what} dominate the bytes)" + (f", {margin:,.1f}x over compute" if margin
                                                                          else "; no operator is compute-bound"))
        if d.memory_bound_by == "kv_cache":
            lines.append("  would help: a smaller KV cache (--kv-cache fp8 halves it; GQA/MLA models), shorter "
                         "contexts, or more bandwidth; batching no longer helps much: each sequence reads its own KV")
        else:
            lines.append(f"  would help: fewer bits per weight (e.g. --weights q4_k_m), more bandwidth, or batching "
                         f"(B sequences share one weight read: tokens/s over the batch grows until compute or the KV "
                         f"cache takes over, near batch ≈ ridge {ridge:,.0f}), or speculative decoding"
                         if ridge else "  would help: fewer bits per weight, more bandwidth, batching")
    else:
        lines.append(f"  bound: compute ({d.compute_ms:,.2f} ms of matmul vs {d.memory_ms:,.2f} ms of memory traffic)")
        lines.append("  would help: a faster matmul dtype (fp8/int8 units), more devices (--tp), or smaller batches "
                     "for lower latency")
    lines += [
        f"Prefill of {w.batch} x {w.prompt} prompt tokens (time to first token){per_dev}:",
        f"  FLOPs {_flops(pf.flops)} ÷ {peak:,.1f} TFLOPS, bytes {_gb(pf.bytes)} ÷ {hw.bandwidth_gbps:,.0f} GB/s, "
        f"per operator: ceiling {pf.ttft_floor_ms:,.2f} ms ({pf.ceiling_tok_s:,.0f} prompt tok/s), estimate "
        f"{pf.ttft_ms:,.2f} ms ({pf.estimate_tok_s:,.0f} tok/s)",
        f"  bound: {pf.bound} (intensity {pf.intensity_flop_per_byte:,.0f} FLOP/B)"
        + ("; would help: more TFLOPS or a lower-precision matmul dtype" if pf.bound == "compute"
           else "; would help: a longer prompt or bigger batch per pass, more bandwidth"),
        f"Memory{per_dev}: weights {m.weights_gb:,.1f} GB + KV cache {m.kv_cache_gb:,.2f} GB "
        f"({m.kv_bytes_per_token / 1e3:,.1f} kB/token/sequence) + activations {m.activations_gb:,.2f} GB + runtime "
        f"{m.runtime_overhead_gb:,.1f} GB = {m.total_gb:,.1f} GB of {m.capacity_gb:,.0f} GiB "
        f"({m.capacity_gb * 1.073741824:,.1f} GB) → "
        + ("fits" if m.fits else "DOES NOT FIT")
        + (f"; needs {m.min_devices} device(s)" if m.min_devices and not m.fits else "")
        + (f"; largest batch at this context {m.max_batch:,}, longest context at this batch {m.max_context:,}"
           if m.fits else ""),
    ]
    sp = p.speculative
    if sp is not None:
        lines += [
            f"Speculative decoding ({sp.draft}, {sp.draft_tokens} drafted tokens, acceptance {sp.acceptance:g}):",
            f"  tokens per round (1 - a^(k+1)) / (1 - a) = {sp.tokens_per_round:,.2f} (Leviathan et al. 2023)",
            f"  round = {sp.draft_tokens} draft steps {sp.draft_ms:,.2f} ms + one verify step over "
            f"{sp.draft_tokens + 1} positions {sp.verify_ms:,.2f} ms (the target's weights read once) → "
            f"{sp.estimate_tok_s:,.1f} tok/s per sequence, {sp.speedup:,.2f}x plain decoding "
            f"(ceiling {sp.ceiling_tok_s:,.1f} at this acceptance)",
            "  breaks even at acceptance " + ("(never: a round costs more than k + 1 plain steps)"
                                             if sp.break_even_acceptance is None else f"{sp.break_even_acceptance:.2f}"),
        ]
        if sp.speedup_by_batch:
            lines.append("  speedup by batch (the verify step turns compute-bound): " + ", ".join(
                f"{b}: {g:.2f}x" for b, g in sp.speedup_by_batch.items()))
    lines += [f"Note: {n}" for n in p.notes]
    return lines
