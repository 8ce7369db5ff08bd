"""plan: the cheapest feasible configuration, confirmed by brute force through predict; the CLI's answers."""

import json
import math

import pytest

import llm_roofline as lr
from llm_roofline.cli import main
from llm_roofline.errors import UserError
from llm_roofline.plan import plan, resolve_prices

DEVICES = ["h100", "a100", "4090", "3090"]
FORMATS = ["bf16", "q4_k_m"]
PRICES = {"h100": 2.5, "a100": 1.6, "4090": 0.7, "3090": 0.4}


def brute_force(model, tpot_ms, ttft_ms, max_devices):
    """Every device x format x tp x pp x replicas for one user, each through predict; the cheapest that fits
    and meets both targets (a replica beyond the first only adds cost for one user)."""
    best = None
    for dev in DEVICES:
        for fmt in FORMATS:
            for pp in (1, 2, 4):
                for tp in (1, 2, 4):
                    if tp * pp > max_devices:
                        continue
                    try:
                        p = lr.predict(model, dev, weights=fmt, tp=tp, pp=pp, prompt=1024, gen=128)
                    except lr.UserError:
                        continue
                    if not p.memory.fits or p.decode.tpot_ms > tpot_ms or p.prefill.ttft_ms > ttft_ms:
                        continue
                    key = (PRICES[dev] * tp * pp, tp * pp, p.decode.tpot_ms)
                    if best is None or key < best[0]:
                        best = (key, p.hardware.id, fmt, tp, pp, p)
    return best


@pytest.mark.parametrize("model,tpot_ms,ttft_ms,max_devices", [
    ("llama-3.1-8b", 25.0, 2000.0, 4),
    ("llama-3.1-70b", 40.0, 3000.0, 4),
    ("qwen3-30b-a3b", 12.0, 1000.0, 4),
])
def test_plan_returns_the_cheapest_feasible_configuration(model, tpot_ms, ttft_ms, max_devices):
    best = brute_force(model, tpot_ms, ttft_ms, max_devices)
    r = plan(model, DEVICES, weights=FORMATS, prompt=1024, gen=128, tpot_ms=tpot_ms, ttft_ms=ttft_ms,
             max_devices=max_devices, prices=PRICES)
    assert best is not None and r.configs
    top = r.configs[0]
    (cost, devices, _), hw, fmt, tp, pp, p = best
    assert (top.hardware, top.weights, top.tp, top.pp, top.replicas) == (hw, fmt, tp, pp, 1)
    assert top.cost_per_hour_usd == pytest.approx(cost)
    assert top.tpot_ms == pytest.approx(p.decode.tpot_ms, rel=1e-9)
    assert top.ttft_ms == pytest.approx(p.prefill.ttft_ms, rel=1e-9)
    # cost per million output tokens: $/h over the tokens an hour produces
    assert top.cost_per_mtok_usd == pytest.approx(cost / (top.throughput_tok_s * 3600) * 1e6)
    costs = [c.cost_per_hour_usd for c in r.configs]
    assert costs == sorted(costs)
    assert all(c.tpot_ms <= tpot_ms and c.ttft_ms <= ttft_ms for c in r.configs)


def test_a_rate_needs_more_devices_and_says_what_binds():
    light = plan("llama-3.1-70b", ["h100"], rate=0.2, prompt=1024, gen=256, tpot_ms=50, ttft_ms=1000)
    heavy = plan("llama-3.1-70b", ["h100"], rate=8, prompt=1024, gen=256, tpot_ms=50, ttft_ms=1000)
    assert light.configs and heavy.configs
    assert heavy.configs[0].devices >= light.configs[0].devices
    for c in heavy.configs:
        assert c.throughput_tok_s == pytest.approx(8 * 256) and not c.saturated
        assert c.binding in ("tpot_ms", "ttft_ms")


def test_nothing_feasible_names_the_nearest_and_how_far():
    r = plan("llama-3.1-70b", ["4090"], weights=["q4_k_m"], min_tok_s=500, max_devices=4)
    assert not r.configs and r.nearest is not None
    assert r.nearest.misses["min_tok_s"] > 1


def test_prices_are_sourced_and_overridable():
    prices = resolve_prices(None)
    usd, source = prices["nvidia-h100-sxm5-80gb"]
    assert usd > 0 and source.startswith("https://") and "(20" in source
    assert resolve_prices({"h100": 2.49})["nvidia-h100-sxm5-80gb"] == (2.49, "given")
    with pytest.raises(UserError):
        resolve_prices({"h100": -1})


def test_plan_cli_json_and_errors(capsys):
    code = main(["plan", "llama-3.1-8b", "-H", "h100,4090", "--rate", "1", "--tpot-ms", "40", "--json"])
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    d = json.loads(out)
    keys = {"hardware", "devices", "tp", "pp", "weights", "concurrency", "tpot_ms", "ttft_ms", "tok_s_per_user",
            "throughput_tok_s", "cost_per_hour_usd", "cost_per_mtok_usd", "binding"}
    assert d["configs"] and keys <= d["configs"][0].keys()
    assert all(math.isfinite(c["tpot_ms"]) for c in d["configs"])
    for args in (["--rate", "1", "--users", "2"], ["--rate", "-1"], ["--tpot-ms", "0"], ["--price", "h100"],
                 ["--max-devices", "0"], ["-H", "h1000"]):
        code = main(["plan", "llama-3.1-8b", *args])
        out, err = capsys.readouterr()
        assert code == 2 and err.count("\n") == 1, args
