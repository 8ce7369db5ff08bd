"""Seeded mutation fuzzing of every input boundary: model configs, device JSONs and measurement CSV rows.

    python scripts/fuzz.py --seed 7 --cases 3000          # a report per input kind; exit 1 on any failure

Each case starts from a real catalog record, changes one to three of its fields to a hostile value (zero,
negative, huge, NaN, Infinity, wrong type, missing), and runs it through the public API. A case passes when it
ends in a UserError whose message is one line, or in a result whose every number is finite and non-negative,
whose JSON is strict, and which keeps its own invariants (active parameters <= total, ceiling >= estimate).
Anything else is a failure: another exception (a traceback for the user), a case over its time limit (a hang),
or a nonsensical result. Every case is bounded in time (SIGALRM); run it under a memory limit to bound memory
(the test suite does, through resource.setrlimit).
"""

from __future__ import annotations

import argparse
import copy
import csv
import io
import json
import math
import random
import signal
import sys
import tempfile
import traceback
from pathlib import Path

HOSTILE = (0, -1, -5, 1, 2, 3, 7, 10**9, 10**18, 1.5, -0.5, float("nan"), float("inf"), float("-inf"), None,
           True, False, "many", "", [], {}, [1, 2], {"a": 1})
CSV_HOSTILE = ("", "0", "-1", "inf", "-inf", "nan", "1e400", "1e-400", "abc", "1.5", "999999999999", "2" * 40,
               "tensor", "layer", "none", "q4_k_m", "decode_tok_s", "ttft_ms", "2024-13", "NaN")
SMALL_MODELS = ("llama-3.2-1b", "qwen3-30b-a3b", "gemma-3-4b", "deepseek-v2-lite", "gpt-oss-20b", "falcon-7b",
                "qwen3.5-27b", "smollm2-135m", "gpt2")
DEVICES = ("h100", "4090", "m2-ultra", "mi300x", "a100", "3090", "apple-m5", "epyc-9654", "1080-ti")
FORMATS = (None, "f16", "bf16", "fp8", "q8_0", "q6_k", "q5_k_m", "q4_k_m", "q4_0", "q2_k", "int4-awq", "nvfp4",
           "mxfp4", "exl2-4.5")
ENGINES = (None, "llama.cpp-cuda", "llama.cpp-metal", "vllm", "tensorrt-llm", "gpt-fast", "mlc-llm", "exllamav2")
CASE_SECONDS = 5
LAST_INPUT: list[str] = [""]  # the mutated input of the case running, for the failure report


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang()


def _mutate(rng: random.Random, record: dict, picks: int) -> dict:
    """Change `picks` fields (nested dicts and lists too) to hostile values, or delete them."""
    record = json.loads(json.dumps(record))
    for _ in range(picks):
        target = record
        while True:
            keys = list(target) if isinstance(target, dict) else list(range(len(target)))
            if not keys:
                break
            key = rng.choice(keys)
            child = target[key]
            if isinstance(child, (dict, list)) and child and rng.random() < 0.5:
                target = child
                continue
            if isinstance(target, dict) and rng.random() < 0.15:
                del target[key]
            elif isinstance(child, (int, float)) and not isinstance(child, bool) and rng.random() < 0.4:
                target[key] = rng.choice((child * 1000, child * 10**6, -child, child // 3 or 1, child + 1))
            else:
                target[key] = copy.deepcopy(rng.choice(HOSTILE))  # never share a list or dict between records
            break
    return record


def _numbers(data, path=""):
    if isinstance(data, bool) or data is None or isinstance(data, str):
        return
    if isinstance(data, (int, float)):
        yield path, data
    elif isinstance(data, dict):
        for k, v in data.items():
            yield from _numbers(v, f"{path}.{k}")
    elif isinstance(data, (list, tuple)):
        for i, v in enumerate(data):
            yield from _numbers(v, f"{path}[{i}]")


def check_prediction(p) -> str | None:
    """Why a prediction is nonsense, or None."""
    data = p.to_dict()
    try:
        json.dumps(data, allow_nan=False)
    except ValueError:
        return "result is not strict JSON (NaN or Infinity)"
    for path, value in _numbers(data):
        if not math.isfinite(value) or value < 0:
            return f"{path} = {value!r}"
    if p.model.params_active > p.model.params_total:
        return f"active parameters {p.model.params_active} > total {p.model.params_total}"
    if p.decode.estimate_tok_s > p.decode.ceiling_tok_s * (1 + 1e-9):
        return "decode estimate above its ceiling"
    if p.prefill.ttft_ms < p.prefill.ttft_floor_ms * (1 - 1e-9):
        return "TTFT estimate below its floor"
    return None


def _workload(rng: random.Random) -> dict:
    return {"weights": rng.choice(FORMATS), "engine": rng.choice(ENGINES), "batch": rng.choice((1, 2, 8, 64, 512)),
            "prompt": rng.choice((1, 16, 512, 8192)), "gen": rng.choice((1, 16, 256)),
            "tp": rng.choice((1, 1, 1, 2, 4, 8))}


def config_case(rng: random.Random, tmp: Path, i: int):
    from llm_roofline import catalog, predict

    mid = rng.choice(catalog.model_ids())
    raw = json.loads((catalog.MODELS_DIR / f"{mid}.json").read_text())
    path = tmp / f"config-{i}.json"
    path.write_text(json.dumps(_mutate(rng, raw, rng.randint(1, 3))))
    LAST_INPUT[0] = path.read_text()
    return predict(path, rng.choice(DEVICES), **_workload(rng))


def device_case(rng: random.Random, tmp: Path, i: int):
    from llm_roofline import catalog, predict

    rec = dict(rng.choice(catalog.hardware_records()))
    if rng.random() < 0.3:  # a measured profile's curves too
        rec["bandwidth"] = [{"bytes": 2**20, "read_gbps": 50.0}, {"bytes": 2**30, "read_gbps": 40.0}]
        rec["roofline"] = [{"dtype": "fp32", "vectors": 1, "matrix_bytes": 2**24, "aspect": 1.0, "gbps": 30.0}]
        rec["measured"] = {"bandwidth_efficiency": 1.0, "step_overhead_us": 100.0}
    path = tmp / f"device-{i}.json"
    path.write_text(json.dumps(_mutate(rng, rec, rng.randint(1, 3))))
    LAST_INPUT[0] = path.read_text()
    return predict(rng.choice(SMALL_MODELS), path, **{**_workload(rng), "tp": 1})


def csv_case(rng: random.Random, tmp: Path, i: int, rows: list[dict], header: list[str]):
    from llm_roofline.validate import validate

    picked = [dict(rng.choice(rows)) for _ in range(2)]
    mutated = picked[0]
    for _ in range(rng.randint(1, 3)):
        mutated[rng.choice(header)] = rng.choice(CSV_HOSTILE)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    for rec in picked:
        values = [rec[h] for h in header]
        if rec is mutated and rng.random() < 0.2:  # a short or a long row
            values = values[: rng.randint(1, len(values) - 1)] if rng.random() < 0.5 else values + ["x", "y"]
        writer.writerow(values)
    path = tmp / f"rows-{i}.csv"
    path.write_text(buf.getvalue())
    LAST_INPUT[0] = buf.getvalue()
    report = validate([path], by=rng.choice((None, "source", "engine")))
    data = report.to_dict()
    json.dumps(data, allow_nan=False)
    return report


KINDS = ("config", "device", "csv")


def run(seed: int, cases: int, kinds: tuple[str, ...] = KINDS) -> dict:
    """{kind: {"cases", "ok", "refused", "failures": [...]}} over `cases` cases split evenly among the kinds."""
    from llm_roofline import catalog
    from llm_roofline.errors import UserError

    rng = random.Random(seed)
    with open(catalog.MEASUREMENTS_CSV, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header, rows = list(reader.fieldnames), list(reader)
    report = {k: {"cases": 0, "ok": 0, "refused": 0, "failures": []} for k in kinds}
    previous = signal.signal(signal.SIGALRM, _alarm)
    try:
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            for i in range(cases):
                kind = kinds[i % len(kinds)]
                r = report[kind]
                r["cases"] += 1
                signal.setitimer(signal.ITIMER_REAL, CASE_SECONDS)
                try:
                    LAST_INPUT[0] = ""
                    if kind == "config":
                        result = config_case(rng, tmp, i)
                    elif kind == "device":
                        result = device_case(rng, tmp, i)
                    else:
                        result = csv_case(rng, tmp, i, rows, header)
                    signal.setitimer(signal.ITIMER_REAL, 0)
                    why = check_prediction(result) if kind != "csv" else None
                    if why:
                        r["failures"].append({"case": i, "kind": "nonsense", "detail": why, "input": LAST_INPUT[0]})
                    else:
                        r["ok"] += 1
                except UserError as exc:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                    if "\n" in str(exc) or not str(exc):
                        r["failures"].append({"case": i, "kind": "not one line", "detail": repr(str(exc))[:300]})
                    else:
                        r["refused"] += 1
                except Hang:
                    r["failures"].append({"case": i, "kind": "hang", "detail": f"over {CASE_SECONDS} s",
                                          "input": LAST_INPUT[0]})
                except Exception as exc:  # noqa: BLE001 - what the fuzzer is looking for
                    signal.setitimer(signal.ITIMER_REAL, 0)
                    frame = traceback.extract_tb(exc.__traceback__)[-1]
                    r["failures"].append({"case": i, "kind": "traceback",
                                          "detail": f"{type(exc).__name__}: {str(exc)[:200]} "
                                                    f"({Path(frame.filename).name}:{frame.lineno})",
                                          "input": LAST_INPUT[0]})
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cases", type=int, default=3000)
    ap.add_argument("--memory-gb", type=float, default=0, help="address-space limit for this process (0: none)")
    ap.add_argument("--kinds", default=",".join(KINDS), help="comma-separated: config, device, csv")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--show-input", action="store_true", help="print each failing case's mutated input")
    args = ap.parse_args(argv)
    if args.memory_gb:
        import resource

        limit = int(args.memory_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    report = run(args.seed, args.cases, tuple(k for k in args.kinds.split(",") if k))
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        for kind, r in report.items():
            print(f"{kind}: {r['cases']} cases, {r['ok']} ok, {r['refused']} refused, {len(r['failures'])} failures")
            for f in r["failures"][:15]:
                print(f"  case {f['case']}: {f['kind']}: {f['detail']}")
                if args.show_input and f.get("input"):
                    print("    input: " + f["input"][:3000].replace("\n", "\n    "))
    return 1 if any(r["failures"] for r in report.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
