"""serve-bench against a real server: llama-cpp-python's OpenAI-compatible server (python -m llama_cpp.server) on
127.0.0.1, serving a GGUF these tests write (random weights, real ggml types, a vocabulary it can stream). The
metrics are checked against the server's own timings (llama.cpp's eval time per token, which it prints) and
against each other. Needs the [engines] extra; without it these tests skip and say so."""

import json
import re
import socket
import subprocess
import sys
import time

import pytest

pytest.importorskip("llama_cpp.server", reason="llama-cpp-python's server is not installed: pip install -e "
                    "'.[engines]'")
httpx = pytest.importorskip("httpx")

from llm_roofline.cli import main  # noqa: E402
from llm_roofline.measure import synthetic_gguf  # noqa: E402

# small enough to stream quickly on two cores, large enough that llama.cpp's compute (not HTTP) sets the pace
DIMS = synthetic_gguf.Dims("server-test", 1024, 8, 16, 4, 2816, 4096)
GEN, PROMPT, REQUESTS = 24, 32, 4
# llama.cpp's own report after each completion: "eval time = 279.17 ms / 32 runs ( 8.72 ms per token, ...)"
EVAL = re.compile(r"llama_perf_context_print:\s+eval time =\s+([\d.]+) ms /\s+(\d+) runs")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("llama-server")
    model = synthetic_gguf.write(tmp / "server-test-q8_0.gguf", DIMS, "Q8_0")
    port, log = free_port(), tmp / "server.log"
    # one thread for the server, the other core for the client; requests are not interrupted by newer ones
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1", "--port",
           str(port), "--n_ctx", "512", "--n_threads", "1", "--n_threads_batch", "1", "--interrupt_requests",
           "False", "--model_alias", "server-test"]
    with log.open("w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(url + "/v1/models", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.25)
        yield url, log, model
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def server_ms_per_token(log, at_least: int = 0) -> list[float]:
    """llama.cpp's eval ms per token of each completion of GEN tokens, in order (GEN - 1 single-token evals where
    the prompt's pass made the first token, GEN where the prompt came from its cache). It prints them once a stream has
    been sent, so the last may come a moment after the client has read [DONE]: wait up to 10 s for at_least."""
    deadline = time.monotonic() + 10
    while True:
        found = [float(ms) / int(runs) for ms, runs in EVAL.findall(log.read_text()) if int(runs) >= GEN - 1]
        if len(found) >= at_least or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


@pytest.mark.parametrize("chat", [False, True])
def test_two_concurrencies_against_the_servers_own_timings(server, capsys, tmp_path, chat):
    url, log, model = server
    before = len(server_ms_per_token(log))
    out = tmp_path / "levels.json"
    args = ["serve-bench", url, "--prompt", str(PROMPT), "--gen", str(GEN), "--num-prompts", str(REQUESTS),
            "--warmup", "1", "--concurrency", "1,2", "--out", str(out), "--predict-model", str(model), "-H",
            "amd-epyc-9654", "--json"] + (["--chat"] if chat else [])
    assert main(args) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["model"] == "server-test"  # from the server's /v1/models
    assert json.loads(out.read_text()) == doc  # the file written after each level holds the same
    c1, c2 = doc["levels"]
    engine_ms = server_ms_per_token(log, before + 1 + 2 * REQUESTS)[before:]
    assert len(engine_ms) == 1 + 2 * REQUESTS  # llama.cpp timed every request, the warm-up included
    server_tpot = sorted(engine_ms)[len(engine_ms) // 2]
    for lvl in (c1, c2):
        assert lvl["completed"] == REQUESTS and lvl["failed"] == 0
        assert lvl["output_tokens_mean"] == GEN  # the head never picks </s>: every request runs to max_tokens
        tpot, itl, ttft, e2el = (lvl[k]["mean"] for k in ("tpot_ms", "itl_ms", "ttft_ms", "e2el_ms"))
        # a stream cannot outrun the engine behind it; what lies above it is the server's per-token Python work
        assert 0.95 * server_tpot <= tpot <= 1.6 * server_tpot + 3.0
        assert itl == pytest.approx(tpot, rel=0.1)  # chunk gaps against (E2EL - TTFT) / (n - 1)
        assert e2el == pytest.approx(ttft + (GEN - 1) * itl, rel=0.1)  # the last content chunk against the last byte
        assert lvl["output_throughput_tok_s"] == pytest.approx(lvl["request_throughput_rps"] * GEN, rel=1e-9)
        assert lvl["prediction"]["batch"] == int(lvl["load"].split()[-1]) and 0 < lvl["mbu"] < 1
    # this server runs one request at a time: a second client waits its turn (TTFT grows by about a request's
    # decode) and adds no throughput
    assert c2["ttft_ms"]["mean"] > c1["ttft_ms"]["mean"] + 0.3 * (GEN - 1) * c1["tpot_ms"]["mean"]
    assert c2["output_throughput_tok_s"] == pytest.approx(c1["output_throughput_tok_s"], rel=0.35)


def test_a_wrong_model_name_is_refused_before_any_load(server, capsys):
    url, log, _ = server
    before = len(server_ms_per_token(log))
    assert main(["serve-bench", url, "--model", "server-tset", "--num-prompts", "2"]) == 2
    err = capsys.readouterr().err
    assert "does not serve 'server-tset'" in err and "closest: server-test" in err and err.count("\n") == 1
    assert len(server_ms_per_token(log)) == before
