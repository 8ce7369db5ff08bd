"""bench --engine llama.cpp: real llama.cpp (llama-cpp-python) on a GGUF the tests write (random weights, real
ggml types), measured beside the prediction from the machine's profile."""

import json

import pytest

from llm_roofline.cli import main
from llm_roofline.measure import synthetic_gguf

gguf = pytest.importorskip("gguf")


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
