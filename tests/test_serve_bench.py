"""serve-bench against a local OpenAI-compatible server started by the test (stdlib http.server, 127.0.0.1): it
streams SSE with a known time to the first token and a known gap per token, so every metric has an expected
value worked out from those delays."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

pytest.importorskip("httpx")

from llm_roofline.cli import main  # noqa: E402
from llm_roofline.errors import UserError  # noqa: E402
from llm_roofline.serve_bench import BenchConfig, endpoint, parse_slo, run  # noqa: E402

FIRST_S, GAP_S = 0.050, 0.010  # the fake server's prefill and per-token times
SEEN = {"auth": set(), "bodies": []}


class FakeServer(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):  # /v1/models
        body = json.dumps({"data": [{"id": "fake-model"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        SEEN["auth"].add(self.headers.get("Authorization"))
        SEEN["bodies"].append(req)
        chat = self.path.endswith("/chat/completions")
        n = req["max_tokens"]
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def send(obj):
            data = f"data: {obj if isinstance(obj, str) else json.dumps(obj)}\n\n".encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        time.sleep(FIRST_S)
        for i in range(n):
            if i:
                time.sleep(GAP_S)
            choice = {"delta": {"content": f"t{i}"}} if chat else {"text": f"t{i}"}
            send({"choices": [choice]})
        prompt_tokens = len((req.get("prompt") or req["messages"][0]["content"]).split())
        send({"choices": [], "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": n}})
        send("[DONE]")
        try:
            self.wfile.write(b"0\r\n\r\n")
        except OSError:  # the client may hang up once it has read [DONE]
            pass


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client that hangs up after [DONE] is no error of the code under test


@pytest.fixture(scope="module")
def server():
    httpd = QuietServer(("127.0.0.1", 0), FakeServer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.mark.parametrize("chat", [False, True])
def test_metrics_match_the_servers_delays(server, chat):
    gen = 20
    [s] = run(BenchConfig(server, "fake-model", chat=chat, prompt_tokens=64, gen=gen, num_prompts=8, warmup=1,
                          concurrency=(2,), slo={"ttft_ms": 1000, "tpot_ms": 1000}, api_key="sekrit"))
    assert s.completed == 8 and s.failed == 0
    assert s.prompt_tokens_mean == 64 and s.output_tokens_mean == gen  # from the server's usage
    assert s.ttft_ms["median"] == pytest.approx(FIRST_S * 1e3, abs=25)
    assert s.tpot_ms["median"] == pytest.approx(GAP_S * 1e3, abs=5)
    assert s.itl_ms["median"] == pytest.approx(GAP_S * 1e3, abs=5)
    e2el = (FIRST_S + (gen - 1) * GAP_S) * 1e3
    assert s.e2el_ms["median"] == pytest.approx(e2el, rel=0.35)
    # two clients each keep one request in flight: about 2 / E2EL requests per second
    assert s.request_throughput_rps == pytest.approx(2 / (e2el / 1e3), rel=0.35)
    assert s.output_throughput_tok_s == pytest.approx(s.request_throughput_rps * gen, rel=1e-9)
    assert s.goodput_rps == pytest.approx(s.request_throughput_rps, rel=1e-9)  # every request meets 1 s
    assert "Bearer sekrit" in SEEN["auth"]
    body = SEEN["bodies"][-1]
    assert body["stream"] and body["max_tokens"] == gen and body["ignore_eos"] and body["min_tokens"] == gen


def test_goodput_counts_only_requests_within_the_slo(server):
    [s] = run(BenchConfig(server, "fake-model", prompt_tokens=8, gen=5, num_prompts=4, warmup=0,
                          slo={"ttft_ms": 1.0}))
    assert s.completed == 4 and s.goodput_rps == 0.0


def test_poisson_rate(server):
    [s] = run(BenchConfig(server, "fake-model", prompt_tokens=8, gen=4, num_prompts=10, warmup=0, rate=50.0))
    assert s.completed == 10 and s.load.startswith("rate 50")


def test_cli_json_never_shows_the_key(server, capsys, monkeypatch):
    monkeypatch.setenv("BENCH_KEY", "sekrit-2")
    code = main(["serve-bench", server, "--prompt", "16", "--gen", "6", "--num-prompts", "4", "--concurrency",
                 "1,2", "--api-key-env", "BENCH_KEY", "--predict-model", "llama-3.1-8b", "-H", "h100", "--json"])
    out, err = capsys.readouterr()
    assert code == 0 and "sekrit" not in out + err
    d = json.loads(out)
    assert d["model"] == "fake-model"  # from /v1/models
    assert [lvl["load"] for lvl in d["levels"]] == ["concurrency 1", "concurrency 2"]
    assert d["levels"][1]["prediction"]["batch"] == 2 and d["levels"][0]["prediction"]["tpot_ms"] > 0
    assert "Bearer sekrit-2" in SEEN["auth"]


def test_mbu_and_plot(server, tmp_path, capsys):
    """MBU = the bytes a decode step of the batch reads / measured TPOT / bandwidth. Llama-3.1-8B in bf16 reads
    its 8.03 B parameters less the embedding table it only indexes (128256 x 4096), 15.01 GB a step, plus a few
    MB of KV cache; the H100 SXM streams 3.35 TB/s (NVIDIA's datasheet)."""
    step_bytes = (8.03e9 - 128256 * 4096) * 2
    plot = tmp_path / "levels.png"
    assert main(["serve-bench", server, "--model", "fake-model", "--prompt", "16", "--gen", "8", "--num-prompts",
                 "4", "--concurrency", "1,2", "--predict-model", "llama-3.1-8b", "-H", "h100", "--plot", str(plot),
                 "--json"]) == 0
    levels = json.loads(capsys.readouterr().out)["levels"]
    for lvl in levels:
        assert lvl["prediction"]["bytes_per_step"] == pytest.approx(step_bytes, rel=0.01)
        tpot_s = lvl["tpot_ms"]["mean"] / 1e3
        assert lvl["mbu"] == pytest.approx(lvl["prediction"]["bytes_per_step"] / tpot_s / 3.35e12, rel=1e-6)
        assert lvl["mbu"] == pytest.approx(step_bytes / (GAP_S * 3.35e12), rel=0.5)  # the fake server's 10 ms a token
    assert plot.stat().st_size > 10_000


@pytest.mark.parametrize("args,needle", [
    (["ftp://x"], "http"), (["http://127.0.0.1:9", "--model", "m", "--warmup", "1"], "cannot connect"),
    (["http://127.0.0.1:9", "--model", "m", "--slo", "ttft=5"], "--slo"),
    (["http://127.0.0.1:9", "--model", "m", "--predict-model", "llama-3.1-8b"], "--hardware"),
])
def test_cli_refuses_in_one_line(capsys, args, needle):
    code = main(["serve-bench", *args])
    out, err = capsys.readouterr()
    assert code == 2 and needle in err and err.count("\n") == 1


def test_endpoint_and_slo_parsing():
    assert endpoint("http://h:1/v1", True) == "http://h:1/v1/chat/completions"
    assert endpoint("http://h:1/", False) == "http://h:1/v1/completions"
    assert parse_slo("ttft_ms=500, tpot_ms=50") == {"ttft_ms": 500.0, "tpot_ms": 50.0}
    with pytest.raises(UserError):
        parse_slo("tpot_ms=-1")


def test_cli_table(server, capsys):
    code = main(["serve-bench", server, "--model", "fake-model", "--chat", "--prompt", "16", "--gen", "4",
                 "--num-prompts", "3", "--slo", "ttft_ms=2000", "--predict-model", "llama-3.1-8b", "-H", "4090"])
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    assert "concurrency 1" in out and "goodput" in out and "measured/floor" in out
