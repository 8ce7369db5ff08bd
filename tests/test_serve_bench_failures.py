"""serve-bench against deliberately broken servers: each failure gets one clear line (exit 2 where nothing could be
measured), failed requests are counted with their reason, every run is bounded in time, and what was measured
before a failure is kept in the --out / --csv files."""

import csv
import json
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

pytest.importorskip("httpx")

from llm_roofline.cli import main  # noqa: E402

MODELS = ["ok", "http-500", "reset", "malformed", "stall", "no-done", "error-event", "trickle", "flaky",
          "dies-after-3"]
COUNT = {"flaky": 0, "dies-after-3": 0}


class Broken(BaseHTTPRequestHandler):
    """The model name in the request picks the way this server misbehaves."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _json(self, status: int, obj) -> None:
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self._json(200, {"data": [{"id": m} for m in MODELS]})

    def _chunk(self, text: str) -> None:
        data = text.encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _event(self, i: int) -> None:
        self._chunk(f"data: {json.dumps({'choices': [{'text': f't{i}'}]})}\n\n")

    def do_POST(self):
        req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        kind = req["model"]
        if kind in COUNT:
            COUNT[kind] += 1
        if kind == "http-500" or (kind == "flaky" and COUNT[kind] % 2 == 0) or \
                (kind == "dies-after-3" and COUNT[kind] > 3):
            return self._json(500, {"error": {"message": "CUDA out of memory", "type": "server_error"}})
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._event(0)
        if kind == "reset":  # closed mid-body with an abortive close (RST): never a clean end of the stream
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        if kind == "malformed":
            self._chunk("data: {not json\n\n")
        elif kind == "error-event":
            self._chunk(f"data: {json.dumps({'error': {'message': 'context length exceeded'}})}\n\n")
        elif kind == "stall":
            time.sleep(3)
        elif kind == "trickle":  # bytes keep coming, too slowly to finish within --timeout
            for i in range(1, 40):
                time.sleep(0.1)
                self._event(i)
        else:
            for i in range(1, 4):
                self._event(i)
        if kind != "no-done":
            self._chunk("data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client that gives up on a stalled stream is what these tests do on purpose


@pytest.fixture(scope="module")
def url():
    httpd = QuietServer(("127.0.0.1", 0), Broken)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def bench(url, model, *extra):
    return main(["serve-bench", url, "--model", model, "--prompt", "4", "--gen", "4", "--num-prompts", "4",
                 "--stall-timeout", "0.5", "--timeout", "2", *extra])


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    return port


@pytest.mark.parametrize("model,needle", [
    ("http-500", "HTTP 500: CUDA out of memory"),
    ("reset", "connection closed mid-stream"),
    ("malformed", "malformed SSE event"),
    ("stall", "the stream stopped: no data for 0.5 s"),
    ("no-done", "ended before [DONE]"),
    ("error-event", "error mid-stream: context length exceeded"),
    ("trickle", "no complete answer within 2 s"),
])
@pytest.mark.parametrize("warmup", ["1", "0"])
def test_each_failure_is_one_line_and_exit_2(url, capsys, model, needle, warmup):
    t0 = time.perf_counter()
    code = bench(url, model, "--warmup", warmup)
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert needle in err and err.count("\n") == 1 and "Traceback" not in err
    assert ("warm-up" if warmup == "1" else "every request at concurrency 1 failed") in err
    assert time.perf_counter() - t0 < 15  # bounded: --timeout 2 a request, --stall-timeout 0.5


def test_server_down_and_wrong_model(url, capsys):
    assert main(["serve-bench", f"http://127.0.0.1:{closed_port()}", "--model", "m"]) == 2
    err = capsys.readouterr().err
    assert "cannot connect" in err and "is the server running" in err and err.count("\n") == 1
    assert bench(url, "okk") == 2  # the server lists its models: a wrong name is refused with the closest
    err = capsys.readouterr().err
    assert "does not serve 'okk'" in err and "closest: ok" in err and err.count("\n") == 1


def test_failed_requests_are_counted_and_the_run_goes_on(url, capsys):
    COUNT["flaky"] = 0
    assert bench(url, "flaky", "--warmup", "0", "--json") == 0
    [level] = json.loads(capsys.readouterr().out)["levels"]
    assert level["completed"] == 2 and level["failed"] == 2  # every second request answers 500
    assert level["errors"] == ["2 x HTTP 500: CUDA out of memory"]


def test_an_interrupted_run_keeps_the_levels_it_measured(url, tmp_path, capsys):
    COUNT["dies-after-3"] = 0
    out, table = tmp_path / "r.json", tmp_path / "r.csv"
    code = main(["serve-bench", url, "--model", "dies-after-3", "--prompt", "4", "--gen", "4", "--num-prompts",
                 "3", "--warmup", "0", "--concurrency", "1,2", "--out", str(out), "--csv", str(table)])
    err = capsys.readouterr().err
    assert code == 2 and "every request at concurrency 2 failed" in err and "1 level(s) before it" in err
    levels = json.loads(out.read_text())["levels"]
    assert [lvl["load"] for lvl in levels] == ["concurrency 1"] and levels[0]["completed"] == 3
    rows = list(csv.DictReader(table.open()))
    assert len(rows) == 1 and rows[0]["load"] == "concurrency 1" and rows[0]["completed"] == "3"
    assert float(rows[0]["tpot_ms_mean"]) > 0


def test_bad_destinations_are_refused_before_any_request(url, tmp_path, capsys):
    COUNT["flaky"] = 0
    assert bench(url, "flaky", "--out", str(tmp_path / "r.txt")) == 2
    assert bench(url, "flaky", "--csv", str(tmp_path / "nowhere" / "r.csv")) == 2
    assert bench(url, "flaky", "--plot", str(tmp_path / "r.gif")) == 2
    assert COUNT["flaky"] == 0  # nothing was sent
    assert len(capsys.readouterr().err.strip().splitlines()) == 3


def test_streams_shorter_than_asked_are_counted(url, capsys):
    """The "ok" model streams 4 tokens whatever max_tokens says: asked for 6, every request is short."""
    assert main(["serve-bench", url, "--model", "ok", "--prompt", "4", "--gen", "6", "--num-prompts", "3",
                 "--warmup", "0", "--json"]) == 0
    [level] = json.loads(capsys.readouterr().out)["levels"]
    assert level["completed"] == 3 and level["short"] == 3 and level["output_tokens_mean"] == 4
    assert main(["serve-bench", url, "--model", "ok", "--prompt", "4", "--gen", "6", "--num-prompts", "3",
                 "--warmup", "0"]) == 0
    assert "3 of 3 requests streamed fewer than 6 tokens" in capsys.readouterr().out
