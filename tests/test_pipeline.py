"""Layer split (pipeline parallel, --pp): expected values worked out by hand from the model's shapes and the
device's datasheet link, not read back from the code."""

import pytest

import llm_roofline as lr
from llm_roofline.hardware import load_hardware


def test_pp2_decode_is_the_whole_step_plus_one_handoff():
    one = lr.predict("llama-3.1-8b", "rtx-3090", batch=1, prompt=512, gen=128)
    two = lr.predict("llama-3.1-8b", "rtx-3090", batch=1, prompt=512, gen=128, pp=2)
    hw = load_hardware("rtx-3090")
    eff = two.efficiency
    # a token's hidden state (4096 fp16 values) crosses the one stage boundary once per step
    handoff_bytes = 4096 * 2
    hop_us = 0.4 if hw.link_gbps_bidir else 1.0  # NCCL's per-step latency: NVLink-class link, else PCIe
    handoff_s = handoff_bytes / (hw.link_gbps * 1e9) / eff.bandwidth + (eff.allreduce_latency_us + hop_us) * 1e-6
    assert two.decode.tpot_ms == pytest.approx(one.decode.tpot_ms + handoff_s * 1e3, rel=1e-9)
    # one sequence: the two devices work in turn, so the bound is one device reading every weight
    assert two.decode.tpot_floor_ms == pytest.approx(one.decode.tpot_floor_ms, rel=1e-9)
    # each device holds 16 of the 32 layers; the embedding (128256 x 4096) sits on the first, the LM head (the
    # same size) and the final norm on the last: the larger end is the last
    layer = (4096 * (4096 + 2 * 1024 + 4096) + 3 * 4096 * 14336 + 2 * 4096) * 2
    per_stage = 16 * layer + 128256 * 4096 * 2 + 4096 * 2
    assert two.memory.weights_gb * 1e9 == pytest.approx(per_stage, rel=1e-3)
    assert one.memory.weights_gb * 1e9 == pytest.approx(32 * layer + 2 * 128256 * 4096 * 2 + 4096 * 2, rel=1e-6)


def test_pp_batch_ceiling_lets_micro_batches_overlap():
    # 8 sequences over 4 stages: 4 micro-batches of 2 keep every stage busy, so the ceiling is at most the
    # 2-sequence step (each stage does a quarter of it, 4 times) and never beats the 8-sequence step split evenly
    pp4 = lr.predict("llama-3.1-8b", "h100", batch=8, prompt=512, gen=128, pp=4)
    b2 = lr.predict("llama-3.1-8b", "h100", batch=2, prompt=512, gen=128)
    b8 = lr.predict("llama-3.1-8b", "h100", batch=8, prompt=512, gen=128)
    assert pp4.decode.tpot_floor_ms <= b2.decode.tpot_floor_ms * (1 + 1e-9)
    assert pp4.decode.tpot_floor_ms >= b8.decode.tpot_floor_ms / 4 * (1 - 1e-9)


def test_layer_split_is_slower_than_tensor_parallel_on_two_3090s():
    # llama.cpp's default on two GPUs is the layer split: the devices read their halves in turn, so one sequence
    # decodes about as fast as on one (bigger) device; tensor parallel reads both halves at once. Public
    # measurement of the layer split (XiongjieDai/GPU-Benchmarks-on-LLM-Inference, 2x RTX 3090, Llama-3-70B
    # Q4_K_M): 16.57 tok/s.
    pp = lr.predict("llama-3.1-70b", "rtx-3090", weights="q4_k_m", engine="llama.cpp-cuda", pp=2)
    tp = lr.predict("llama-3.1-70b", "rtx-3090", weights="q4_k_m", engine="llama.cpp-cuda", tp=2)
    assert pp.decode.estimate_tok_s < 0.7 * tp.decode.estimate_tok_s
    assert pp.decode.estimate_tok_s == pytest.approx(16.57, rel=0.2)
    assert pp.memory.fits and not lr.predict("llama-3.1-70b", "rtx-3090", weights="q4_k_m").memory.fits


def test_pp_beyond_the_layers_is_refused():
    with pytest.raises(lr.UserError, match="more stages than"):
        lr.predict("llama-3.1-8b", "h100", pp=33)
