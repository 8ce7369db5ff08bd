"""bench --engine llama.cpp: real llama.cpp (llama-cpp-python) on a GGUF the tests write (random weights, real
ggml types), measured beside the prediction from the machine's profile."""

import json

import pytest

from llm_roofline.cli import main
from llm_roofline.measure import synthetic_gguf

gguf = pytest.importorskip("gguf")


SMALL_REFERENCES = (synthetic_gguf.Dims("small-reference", 256, 2, 4, 2, 1024, 512),
                    synthetic_gguf.Dims("larger-reference", 512, 1, 8, 4, 2048, 512))


@pytest.fixture(autouse=True)
def small_references(monkeypatch):
    """llama.cpp's kernels measured on small reference files (the real ones are 174-243 M weights: minutes)."""
    from llm_roofline.measure import llama_kernels

    monkeypatch.setattr(llama_kernels, "REFERENCES", SMALL_REFERENCES)


@pytest.fixture(scope="module")
def profile(tmp_path_factory):
    pytest.importorskip("torch")
    path = tmp_path_factory.mktemp("profile") / "cpu.json"
    assert main(["measure", "--device", "cpu", "--quick", "--out", str(path), "--json"]) == 0
    return path


@pytest.mark.parametrize("qtype", synthetic_gguf.TYPES)
def test_synthetic_files_are_what_gguf_reports(tmp_path, qtype):
    """Every type the benchmark writes reads back as MODEL with the file's exact bytes."""
    import llm_roofline as lr

    path = synthetic_gguf.write(tmp_path / f"tiny-{qtype}.gguf", synthetic_gguf.TINY, qtype)
    reader = gguf.GGUFReader(str(path))
    nbytes = sum(int(t.n_bytes) for t in reader.tensors)
    types = {t.tensor_type.name for t in reader.tensors if t.name.endswith("ffn_up.weight")}
    assert types == {qtype}
    p = lr.predict(path, "h100", prompt=16, gen=4)
    assert p.model.weight_bytes == pytest.approx(nbytes, rel=5e-3)


def test_llama_cpp_runs_pp_and_tg_at_each_depth(tmp_path, profile):
    pytest.importorskip("llama_cpp")
    from llm_roofline.measure.llama_bench import bench_llama_cpp

    path = synthetic_gguf.write(tmp_path / "tiny.gguf", synthetic_gguf.TINY, "Q8_0")
    r = bench_llama_cpp(path, profile, prompt=32, gen=8, depths=(0, 64), threads=1, repeats=2)
    assert [(row["test"], row["depth"]) for row in r["rows"]] == [("pp32", 0), ("tg8", 0), ("pp32", 64),
                                                                   ("tg8", 64)]
    for row in r["rows"]:
        assert row["measured_tok_s"] > 0 and row["measured_sd_tok_s"] >= 0
        assert 0 < row["estimate_tok_s"] <= row["ceiling_tok_s"]
        assert row["error_pct"] == pytest.approx(100 * (row["estimate_tok_s"] - row["measured_tok_s"])
                                                 / row["measured_tok_s"])
    assert all(0 < row["mbu"] for row in r["rows"] if row["test"].startswith("tg"))


def test_cli_json_plot_and_refusals(tmp_path, profile, capsys):
    pytest.importorskip("llama_cpp")
    path = synthetic_gguf.write(tmp_path / "tiny.gguf", synthetic_gguf.TINY, "Q4_0")
    plot = tmp_path / "pp-tg.png"
    assert main(["bench", str(path), "--engine", "llama.cpp", "-H", str(profile), "--prompt", "16", "--gen", "4",
                 "--repeats", "1", "--threads", "1", "--plot", str(plot), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["engine"] == "llama.cpp" and len(out["rows"]) == 2 and plot.stat().st_size > 1000
    assert main(["bench", "llama-3.1-8b", "--engine", "llama.cpp", "-H", str(profile)]) == 2
    assert ".gguf" in capsys.readouterr().err
    assert main(["bench", str(path), "--engine", "vllm", "-H", str(profile)]) == 2
    assert "llama.cpp" in capsys.readouterr().err
    assert main(["bench", str(path), "--engine", "llama.cpp", "--depth", "-1", "-H", str(profile)]) == 2


def test_the_vocabulary_tokenizes_any_text(tmp_path):
    """llama.cpp reads the synthetic vocabulary: the prompt word is one token, other text falls back to bytes."""
    llama_cpp = pytest.importorskip("llama_cpp")
    path = synthetic_gguf.write(tmp_path / "tiny.gguf", synthetic_gguf.TINY, "Q8_0")
    tokens, _, _ = synthetic_gguf.vocabulary(synthetic_gguf.TINY.vocab)
    llm = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    word = tokens.index("\u2581hello")
    assert llm.tokenize(b"hello hello hello") == [1, word, word, word]  # <s>, then one token a word
    ids = llm.tokenize("[INST] é".encode(), add_bos=False)  # no pieces for these: the byte tokens <0xNN>
    assert all(3 <= i < synthetic_gguf.SPECIAL for i in ids)
    assert llm.detokenize(ids).decode().replace("\u2581", " ").strip() == "[INST] é"  # UTF-8 bytes, then spaces


def test_step_bytes_by_type_by_hand(tmp_path):
    """A decode step reads every tensor but the embedding table (one row); tied files read it as the head. Q8_0
    stores 32 weights in 34 bytes, F32 4 bytes a value."""
    from llm_roofline.measure.llama_kernels import needed_types, step_bytes, step_elements

    d = synthetic_gguf.TINY  # 256 wide, 2 layers, MLP 512, 4 heads of 64, 2 KV heads, vocab 512, untied
    path = synthetic_gguf.write(tmp_path / "tiny.gguf", d, "Q8_0")
    layer = 256 * 256 * 2 + 128 * 256 * 2 + 3 * 512 * 256  # q, o; k, v; gate, up, down
    head = 512 * 256
    assert step_bytes(path) == {"Q8_0": (d.layers * layer + head) // 32 * 34, "F32": (2 * d.layers + 1) * 256 * 4}
    assert step_elements(path) == {"Q8_0": d.layers * layer + head}
    assert needed_types(path) == (["F16", "Q8_0"], [])
    from llm_roofline.measure.llama_kernels import step_tensors

    rows = {r for t, _, _, r in step_tensors(path) if t == "Q8_0"}
    assert rows == {256, 512}  # every matrix's rows are 256 values long, ffn_down's 512 (gguf's ne[0])
    qwen_like = synthetic_gguf.Dims("narrow", 896, 1, 14, 2, 4864, 512, tie=True)  # 896: not whole 256-blocks
    path = synthetic_gguf.write(tmp_path / "narrow.gguf", qwen_like, "Q4_K")
    assert set(step_bytes(path)) == {"Q4_K", "Q5_0", "Q8_0", "F32"}  # down in Q4_K, the rest Q5_0, head Q8_0
    assert needed_types(path) == (["F16", "Q4_K", "Q5_0", "Q8_0"], [])


def test_estimate_from_kernel_rates_by_hand(tmp_path):
    """tg: step + layers x layer cost + each type's share of the weight bytes at its rate + the attention FLOPs at
    the attention rate; pp: the matmul FLOPs at each type's share of the elements at its rate + the attention FLOPs
    at the prompt's attention rate."""
    from types import SimpleNamespace as NS

    from llm_roofline.measure.llama_bench import estimate_from_kernels
    from llm_roofline.measure.llama_kernels import KernelRates, step_bytes

    path = synthetic_gguf.write(tmp_path / "tiny.gguf", synthetic_gguf.TINY, "Q8_0")
    b = step_bytes(path)
    q8_share = b["Q8_0"] / (b["Q8_0"] + b["F32"])
    # one size measured (rates flat in size), so every tensor takes its type's rate
    rates = KernelRates((1e6,), {"F16": [40.0], "Q8_0": [10.0]}, {"F16": [100.0], "Q8_0": [50.0]}, 100.0, 20.0, 2,
                        20.0, 40.0)
    p = NS(decode=NS(weight_bytes_per_step=1e9, kv_bytes_per_step=2e8), prefill=NS(flops=1e12),
           operators=[NS(phase="decode", kind="attention", flops=4e8), NS(phase="decode", kind="matmul", flops=9e9),
                      NS(phase="prefill", kind="attention", flops=2e11)])
    est = estimate_from_kernels(path, p, rates, read_gbps=30.0, n_layers=2, prompt=512)
    tg_s = 100e-6 + 2 * 20e-6 + 1e9 * q8_share / 10e9 + 1e9 * (1 - q8_share) / 40e9 + 4e8 / 20e9
    assert est["tg_tok_s"] == pytest.approx(1 / tg_s, rel=1e-9)
    assert est["pp_tok_s"] == pytest.approx(512 / ((1e12 - 2e11) / 50e9 + 2e11 / 40e9), rel=1e-9)  # all Q8_0
    assert est["dequant_bound"] == ["Q8_0 streams 10.0 GB/s"]  # 10 < 0.6 x 30 GB/s read


def test_kernel_rates_measured_on_a_small_reference():
    llama_cpp = pytest.importorskip("llama_cpp")
    from llm_roofline.measure.llama_kernels import measure_kernels

    r = measure_kernels(llama_cpp, ["F16", "Q4_0"], threads=1, tokens=4, prompt=32, repeats=1,
                        references=SMALL_REFERENCES)
    assert set(r.decode_gbps) == set(r.prefill_gflops) == {"F16", "Q4_0"}
    assert all(len(v) == 2 and min(v) > 0 for v in [*r.decode_gbps.values(), *r.prefill_gflops.values()])
    # the references' sizes: the bytes-weighted geometric mean of their matrices' row lengths (256 and 1024 wide
    # in the first, 512 and 2048 in the second), ascending
    assert 256 < r.sizes[0] < 1024 and 512 < r.sizes[1] < 2048 and r.sizes[0] < r.sizes[1]
    assert r.step_us >= 0 and r.layer_us >= 0 and r.step_us + r.layer_us > 0
    assert r.attention_decode_gflops > 0 and r.attention_prefill_gflops > 0


def test_rates_between_reference_sizes_by_hand():
    """Log-log between the two row lengths, clamped outside: 2 M lies halfway (in logs) from 1 M to 4 M, so the
    rate is the geometric mean of 20 and 40 GB/s."""
    from llm_roofline.measure.llama_kernels import KernelRates

    r = KernelRates((1e6, 4e6), {"F16": [20.0, 40.0]}, {"F16": [100.0, 100.0]}, 0.0, 0.0, 1, 10.0, 10.0)
    assert r.decode_at("F16", 2e6) == pytest.approx((20 * 40) ** 0.5)
    assert r.decode_at("F16", 1e3) == 20.0 and r.decode_at("F16", 1e9) == 40.0
    assert r.prefill_at("F16", 3e6) == pytest.approx(100.0)


def test_a_gguf_on_a_measured_cpu_runs_llama_cpps_kernels(tmp_path):
    """A measured CPU profile whose PyTorch fp16 matmul crawls (1 GFLOP/s, as PyTorch's CPU fp16 kernels do) must
    not time a GGUF's matmuls at that rate: llama.cpp multiplies in fp32 and integer dot products, taken at the
    profile's fp32 rate (100 GFLOP/s here). The ceiling bounds the memory stream only."""
    import llm_roofline as lr

    profile = tmp_path / "cpu.json"
    profile.write_text(json.dumps({
        "id": "measured-cpu", "name": "a CPU (measured)", "category": "desktop_cpu", "memory_gb": 16,
        "bandwidth_gbps": 30.0, "peak_tflops": {"fp32": 0.1, "bf16": 0.3, "fp16": 0.001},
        "measured": {"bandwidth_efficiency": 1.0, "compute_efficiency": 1.0, "step_overhead_us": 1000.0,
                     "layer_overhead_us": 300.0}}))
    dims = synthetic_gguf.Dims("mid", 1024, 2, 16, 4, 4096, 512)  # 60 MFLOP a token: 60 ms at 1 GFLOP/s
    path = synthetic_gguf.write(tmp_path / "mid.gguf", dims, "Q4_0")
    p = lr.predict(path, str(profile), prompt=16, gen=4)
    d = p.decode
    assert d.tpot_floor_ms == pytest.approx(d.bytes_per_step / 30e9 * 1e3, rel=1e-6)  # memory only
    # the estimate: each operator the larger of its bytes at 30 GB/s and its FLOPs at 100 GFLOP/s, plus the CPU
    # class's 500 µs a step (not PyTorch's measured 1,000 µs + 300 µs a layer)
    assert d.tpot_ms <= (d.bytes_per_step / 30e9 + d.flops_per_step / 1e11 + 500e-6) * 1e3 * (1 + 1e-9)
    assert d.tpot_ms >= (max(d.bytes_per_step / 30e9, d.flops_per_step / 1e11) + 500e-6) * 1e3 * (1 - 1e-9) / 2
    assert d.tpot_ms < d.flops_per_step / 1e9 * 1e3 / 10  # far from the fp16 kernels' 1 GFLOP/s
    assert any("llama.cpp's CPU kernels" in n for n in p.notes)


def test_attention_flops_added_by_a_cached_depth_by_hand(tmp_path):
    """QK and PV: 2 x 2 FLOPs per query head dimension per cached token per layer. TINY: 4 heads of 64, 2 layers;
    D cached tokens add 4 x 256 x 2 x D FLOPs to every new token, one by one or in a prompt."""
    from llm_roofline.measure.llama_kernels import attention_flops

    path = synthetic_gguf.write(tmp_path / "tiny.gguf", synthetic_gguf.TINY, "Q8_0")
    per_token = 4 * 256 * 2 * 300
    for one_by_one in (True, False):
        added = attention_flops(path, 300, 16, one_by_one) - attention_flops(path, 0, 16, one_by_one)
        assert added == pytest.approx(16 * per_token, rel=1e-9)


def test_attention_that_adds_no_time_is_refused(tmp_path):
    """A machine that stalls the timing at depth 0 (here: an engine whose steps on an empty cache take 4 ms and on
    2048 cached tokens 1 ms) must not yield an attention rate of billions of GFLOP/s: three tries, then one clear
    refusal."""
    import time
    from types import SimpleNamespace as NS

    from llm_roofline.errors import UserError
    from llm_roofline.measure.llama_kernels import _attention_rates

    class Instant:
        def __init__(self, **kw):
            self.n_tokens = 0
            self._ctx = NS(kv_cache_seq_rm=lambda *a: True)

        def reset(self):
            self.n_tokens = 0

        def eval(self, tokens):
            time.sleep(0.004 if self.n_tokens < 1000 else 0.001)
            self.n_tokens += len(tokens)

    path = synthetic_gguf.write(tmp_path / "tiny.gguf", synthetic_gguf.TINY, "Q8_0")
    with pytest.raises(UserError, match="attention could not be timed"):
        _attention_rates(NS(Llama=Instant), path, threads=1, tokens=4, prompt=8, repeats=1)
