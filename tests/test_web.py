"""The web app's JSON API and its safety: same answers as --json, bounded inputs, no files, strict headers."""

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("starlette")
from starlette.testclient import TestClient  # noqa: E402

import llm_roofline as lr  # noqa: E402
from llm_roofline.cli import main  # noqa: E402
from llm_roofline.web.app import MAX_BODY, create_app  # noqa: E402


@pytest.fixture(scope="module")
def client():
    return TestClient(create_app())


def test_predict_api_is_the_json_output(client, capsys):
    r = client.get("/api/predict", params={"model": "llama-3.1-8b", "hardware": "4090", "weights": "q4_k_m",
                                           "batch": 4})
    assert r.status_code == 200
    code = main(["predict", "llama-3.1-8b", "-H", "4090", "--weights", "q4_k_m", "--batch", "4", "--json",
                 "--explain"])
    cli = json.loads(capsys.readouterr().out)
    assert code == 0 and r.json() == cli


def test_pasted_config_compare_and_sweep(client):
    from llm_roofline import catalog

    raw = json.loads((catalog.MODELS_DIR / "qwen3-8b.json").read_text())
    r = client.post("/api/predict", json={"config": raw.get("config", raw), "hardware": "h100", "batch": 2})
    assert r.status_code == 200 and r.json()["decode"]["estimate_tok_s"] == pytest.approx(
        lr.predict("qwen3-8b", "h100", batch=2).decode.estimate_tok_s, rel=1e-9)
    rows = client.get("/api/compare", params={"model": "llama-3.1-8b", "hardware": "h100,a100"}).json()
    assert [x["hardware"]["id"] for x in rows] == ["nvidia-h100-sxm5-80gb", "nvidia-a100-sxm4-80gb"]
    s = client.get("/api/sweep", params={"model": "llama-3.1-8b", "hardware": "h100", "batches": "1,8"}).json()
    assert s["tpot_ms"][1] == pytest.approx(lr.predict("llama-3.1-8b", "h100", batch=8).decode.tpot_ms, rel=1e-9)


def test_page_and_assets_carry_a_strict_policy(client):
    for path in ("/", "/app.js", "/app.css"):
        r = client.get(path)
        assert r.status_code == 200
        csp = r.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert r.headers["x-content-type-options"] == "nosniff"
    assert "cdn" not in client.get("/").text.lower() and "http" not in client.get("/app.js").text.split("SVG")[0]


@pytest.mark.parametrize("params", [
    {"model": "/etc/passwd"}, {"model": "../../secret"}, {"model": "a/b/c"}, {"hardware": "/tmp/x.json"},
    {"hardware": "h100.json"}, {"batch": "many"}, {"batch": "0"}, {"model": "no-such-model"}, {"tp": "7"},
])
def test_bad_or_hostile_inputs_get_one_line_and_400(client, params):
    r = client.get("/api/predict", params={"model": "llama-3.1-8b", **params})
    assert r.status_code == 400 and "\n" not in r.json()["error"]


@pytest.mark.parametrize("batch", [4.5, True, "4.5", "1e3", [1]])
def test_json_numbers_must_be_whole(client, batch):
    r = client.post("/api/predict", json={"model": "llama-3.1-8b", "batch": batch})
    assert r.status_code == 400 and "batch" in r.json()["error"]


def test_oversized_deep_and_malformed_bodies_are_refused(client):
    assert client.post("/api/predict", content=b"{" * 10, headers={"content-type": "application/json"}
                       ).status_code == 400
    assert client.post("/api/predict", content=b"[1, 2]").status_code == 400
    deep = {"config": {}}
    node = deep["config"]
    for _ in range(40):
        node["x"] = {}
        node = node["x"]
    assert "deeper" in client.post("/api/predict", json=deep).json()["error"]
    big = b'{"config": "' + b"x" * (MAX_BODY + 10) + b'"}'
    assert client.post("/api/predict", content=big).status_code == 400
    assert client.get("/../pyproject.toml").status_code == 404
    assert client.get("/static/../app.py").status_code == 404


def test_a_burst_of_requests_is_answered_and_the_server_keeps_answering(client):
    def one(i):
        return client.get("/api/predict", params={"model": "llama-3.1-8b", "batch": 1 + i % 64}).status_code

    with ThreadPoolExecutor(32) as pool:
        codes = list(pool.map(one, range(200)))
    assert codes.count(200) == 200
    assert client.get("/api/catalog").json()["models"]


def test_serve_refuses_a_bad_port(capsys):
    assert main(["serve", "--port", "0"]) == 2
    assert "--port" in capsys.readouterr().err


def test_a_running_server_answers_200_concurrent_clients_with_bounded_memory():
    """`llm-roofline serve`'s own stack (uvicorn on 127.0.0.1) under 200 clients at once: every request answered,
    the server still answering afterwards, and its memory not growing with the burst."""
    import resource
    import socket
    import threading
    import time

    import httpx
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    assert server.started
    try:
        def one(i):
            with httpx.Client(timeout=60) as c:
                return c.get(f"{url}/api/predict", params={"model": "llama-3.1-8b", "batch": 1 + i % 64}).status_code

        one(0)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        with ThreadPoolExecutor(200) as pool:
            codes = list(pool.map(one, range(200)))
        grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
        assert codes.count(200) == 200
        assert grown_mb < 300, grown_mb  # 200 clients' threads and buffers, not one copy of the model per request
        assert httpx.get(f"{url}/api/catalog", timeout=30).json()["models"]
    finally:
        server.should_exit = True
        thread.join(10)
