"""Rebuild the catalogs shipped in the package from the team data in ../shared/data.

    python scripts/sync_catalog.py [--shared ../shared/data]

Hardware: hardware.yaml -> src/llm_roofline/catalog/hardware.json, keeping every record's `id`, sources,
notes and confidence, and adding the short aliases people type (ALIASES below) plus the fixes listed in
FIXES (each with the reason; see docs/catalog.md).
Models: models/*.json are copied byte for byte; models/INDEX.md gives the Hugging Face repo id (an alias)
and the source of each config -> catalog/models_index.json.
Added devices: data/hardware-added.yaml holds sourced records for devices the measurements name but
hardware.yaml lacks; they are appended to hardware.json.
Measurements: measurements/dev.csv is copied as catalog/measurements_dev.csv, with `hardware_id` filled for the
rows whose device is one of those added records (their `measured_as` names) and a `build_date` column taken from
the date each source's text states ("snapshots May 2024" -> 2024-05); every other cell is as published.

Run it whenever ../shared/data changes; the package never reads ../shared at run time.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import shutil
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CATALOG = ROOT / "src" / "llm_roofline" / "catalog"
ADDED = ROOT / "data" / "hardware-added.yaml"
ADDED_SOURCES = ["https://www.techpowerup.com/gpu-specs/", "NVIDIA architecture whitepapers (Pascal, Volta, Turing, "
                 "Ampere GA102, Ada, Blackwell): per-SM rates; see data/hardware-added.yaml"]

# Short names people type. Every alias must be unique across the catalog (check_unique_names).
ALIASES: dict[str, list[str]] = {
    "nvidia-v100-sxm2-32gb": ["v100", "v100-32gb", "v100-sxm2"],
    "nvidia-a100-sxm4-40gb": ["a100-40gb", "a100-sxm4-40gb"],
    "nvidia-a100-sxm4-80gb": ["a100", "a100-80gb", "a100-sxm", "a100-sxm4"],
    "nvidia-a100-pcie-80gb": ["a100-pcie", "a100-pcie-80gb"],
    "nvidia-a10g": ["a10g"],
    "nvidia-a10": ["a10"],
    "nvidia-l4": ["l4"],
    "nvidia-l40s": ["l40s"],
    "nvidia-h100-sxm5-80gb": ["h100", "h100-sxm", "h100-sxm5", "h100-80gb"],
    "nvidia-h100-pcie-80gb": ["h100-pcie"],
    "nvidia-h100-nvl-94gb": ["h100-nvl"],
    "nvidia-h200-sxm-141gb": ["h200", "h200-sxm"],
    "nvidia-h200-nvl-141gb": ["h200-nvl"],
    "nvidia-gh200-96gb": ["gh200", "gh200-96gb"],
    "nvidia-gh200-144gb": ["gh200-144gb"],
    "nvidia-b200-hgx": ["b200"],
    "nvidia-b300-hgx": ["b300"],
    "nvidia-gb200-gpu": ["gb200"],
    "nvidia-gb300-gpu": ["gb300"],
    "nvidia-rtx-3090": ["3090", "rtx-3090", "rtx3090"],
    "nvidia-rtx-3090-ti": ["3090-ti", "3090ti", "rtx-3090-ti"],
    "nvidia-rtx-4060-ti-16gb": ["4060-ti", "4060ti", "rtx-4060-ti"],
    "nvidia-rtx-4070-ti-super": ["4070-ti-super", "rtx-4070-ti-super"],
    "nvidia-rtx-4080": ["4080", "rtx-4080"],
    "nvidia-rtx-4090": ["4090", "rtx-4090", "rtx4090"],
    "nvidia-rtx-5090": ["5090", "rtx-5090", "rtx5090"],
    "nvidia-rtx-a6000": ["a6000", "rtx-a6000"],
    "nvidia-rtx-6000-ada": ["rtx-6000-ada", "6000-ada"],
    "nvidia-rtx-pro-6000-blackwell": ["rtx-pro-6000", "pro-6000"],
    "nvidia-t4": ["t4"],
    "nvidia-jetson-agx-orin-64gb": ["orin", "agx-orin", "jetson-orin"],
    "nvidia-dgx-spark-gb10": ["dgx-spark", "spark", "gb10"],
    "amd-mi210": ["mi210"],
    "amd-mi250x": ["mi250x"],
    "amd-mi300x": ["mi300x"],
    "amd-mi325x": ["mi325x"],
    "amd-mi350x": ["mi350x"],
    "amd-mi355x": ["mi355x"],
    "amd-rx-7900-xtx": ["7900-xtx", "7900xtx", "rx-7900-xtx"],
    "amd-ryzen-ai-max-plus-395": ["strix-halo", "ai-max-395", "ryzen-ai-max-395"],
    "apple-m1": ["m1"],
    "apple-m1-pro": ["m1-pro"],
    "apple-m1-max": ["m1-max"],
    "apple-m1-ultra": ["m1-ultra"],
    "apple-m2": ["m2"],
    "apple-m2-pro": ["m2-pro"],
    "apple-m2-max": ["m2-max"],
    "apple-m2-ultra": ["m2-ultra"],
    "apple-m3": ["m3"],
    "apple-m3-pro": ["m3-pro"],
    "apple-m3-max-30c": ["m3-max-30c"],
    "apple-m3-max-40c": ["m3-max", "m3-max-40c"],
    "apple-m3-ultra": ["m3-ultra"],
    "apple-m4": ["m4"],
    "apple-m4-pro": ["m4-pro"],
    "apple-m4-max-32c": ["m4-max-32c"],
    "apple-m4-max-40c": ["m4-max", "m4-max-40c"],
    "apple-m5": ["m5"],
    "intel-gaudi2": ["gaudi2", "gaudi-2"],
    "intel-gaudi3": ["gaudi3", "gaudi-3"],
    "google-tpu-v4": ["tpu-v4"],
    "google-tpu-v5e": ["tpu-v5e", "v5e"],
    "google-tpu-v5p": ["tpu-v5p", "v5p"],
    "google-tpu-v6e": ["tpu-v6e", "v6e", "trillium"],
    "google-tpu7x-ironwood": ["tpu7x", "ironwood"],
    "amd-epyc-9654": ["epyc-9654", "genoa"],
    "intel-xeon-platinum-8480plus": ["xeon-8480", "xeon-8480+", "8480+", "sapphire-rapids"],
    "amd-ryzen-9-7950x": ["7950x", "ryzen-7950x"],
    "generic-desktop-ddr4-dual-channel": ["ddr4-desktop", "desktop-ddr4", "desktop-cpu"],
}

# Corrections applied to the project's copy; each is reported in docs/catalog.md and on the issue.
FIXES: dict[str, dict] = {}

PEAK_FIELDS = {
    "fp32": "fp32_tflops",
    "tf32": "tf32_tflops",
    "fp16": "fp16_bf16_tflops",
    "fp8": "fp8_tflops",
    "int8": "int8_tops",
    "fp4": "fp4_tflops",
}


def build_hardware(shared: Path) -> list[dict]:
    records = yaml.safe_load((shared / "hardware.yaml").read_text())
    out = []
    for rec in records:
        rec = {**rec, **FIXES.get(rec["id"], {})}
        link = rec.get("interconnect") or {}
        aliases = ALIASES.get(rec["id"], [])
        out.append(
            {
                "id": rec["id"],
                "name": rec["name"],
                "vendor": rec["vendor"],
                "category": rec["category"],
                "aliases": aliases,
                "memory_gb": rec["memory_gb"],
                "memory_type": rec.get("memory_type"),
                "bandwidth_gbps": rec["mem_bw_gbps"],
                "peak_tflops": {k: rec.get(v) for k, v in PEAK_FIELDS.items()},
                "link_gbps_bidir": link.get("scale_up_gbps_bidir"),
                "link_name": link.get("scale_up_link"),
                "pcie_gbps_bidir": link.get("pcie_gbps_bidir"),
                "tdp_w": rec.get("tdp_w"),
                "launch_year": rec.get("launch_year"),
                "sources": rec.get("sources") or [],
                "notes": rec.get("notes") or "",
                "confidence": rec.get("confidence"),
            }
        )
    return out


def check_unique_names(hardware: list[dict]) -> None:
    """Every id and alias names one device, across the shared catalog and the added devices."""
    seen: dict[str, str] = {}
    for rec in hardware:
        for name in [rec["id"], *rec["aliases"]]:
            if name in seen:
                raise SystemExit(f"name {name!r} used by {seen[name]} and {rec['id']}")
            seen[name] = rec["id"]


def added_hardware() -> tuple[list[dict], dict[str, str], dict[str, dict]]:
    """Records for data/hardware-added.yaml's devices (hardware.json's layout), measured name -> id, and the
    fields it adds to devices hardware.yaml has (id -> fields)."""
    records, ids, extra = [], {}, {}
    for rec in yaml.safe_load(ADDED.read_text()):
        if "extends" in rec:
            extra[rec["extends"]] = {k: v for k, v in rec.items() if k != "extends"}
            continue
        hid = rec.get("same_as") or rec["id"]
        ids.update({name: hid for name in rec.get("measured_as", [])})
        if "same_as" in rec:
            continue
        nvidia = rec.get("vendor", "NVIDIA") == "NVIDIA"
        how = ("peaks are SMs x boost clock x the architecture's per-SM rate. " if nvidia and rec.get("sm_count")
               else "")
        records.append({
            "id": rec["id"], "name": rec["name"], "vendor": rec.get("vendor", "NVIDIA"), "category": rec["category"],
            "aliases": rec.get("aliases") or short_names(rec["id"]),
            "memory_gb": rec["memory_gb"], "memory_type": rec["memory_type"], "bandwidth_gbps": rec["bandwidth_gbps"],
            "sm_count": rec.get("sm_count"), "boost_clock_mhz": rec.get("boost_clock_mhz"),
            "compute_capability": rec.get("compute_capability"),
            "peak_tflops": {k: rec["peak_tflops"].get(k) for k in PEAK_FIELDS},
            "link_gbps_bidir": None, "link_name": None, "pcie_gbps_bidir": None, "tdp_w": None,
            "launch_year": rec["launch_year"], "sources": rec.get("sources") or ADDED_SOURCES,
            "notes": ("Added by the project (data/hardware-added.yaml): " + how + rec.get("notes", "")).strip(),
            "confidence": rec.get("confidence", "medium"),
        })
    return records, ids, extra


MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")


def build_date(source: str) -> str:
    """The build date a source's text states: the last "2024-09-15" or "May 2024" ("Oct-Nov 2023": November) in
    it, as YYYY-MM; else a lone year ("table from 2023") as YYYY; else ""."""
    found = [(int(y), int(m)) for y, m in re.findall(r"\b(20\d\d)-(\d\d)-\d\d\b", source)]
    found += [(int(y), MONTHS.index(m.lower()) + 1)
              for m, y in re.findall(r"\b(" + "|".join(MONTHS) + r")[a-z]*\.? (20\d\d)\b", source, re.I)]
    if found:
        return "%d-%02d" % max(found)
    year = re.search(r"\b(20\d\d)\b", re.sub(r"@\w+", "", source))
    return year.group(1) if year else ""


def short_names(hid: str) -> list[str]:
    """What people type for an added device: nvidia-rtx-3060-12gb -> rtx-3060, 3060; nvidia-a40 -> a40."""
    short = re.sub(r"-(pcie-)?\d+gb$", "", hid.removeprefix("nvidia-"))
    names = [short] if short != hid.removeprefix("nvidia-") else []
    bare = re.sub(r"^(rtx|gtx)-(?=\d)", "", short)
    return names + ([bare] if bare != short else [])


# Sources whose text states no date: the year their builds come from (see docs/catalog.md). The llama.cpp
# scoreboards were opened in 2025 (#15013 CUDA, #15021 ROCm; RTX 50-series cards, launched in 2025, are among
# their rows) and December 2024 (#10879 Vulkan): after CUDA graphs were merged (#6766, 2024-05-08) and before
# they were enabled on Volta and Turing (#25749, 2026-07).
SOURCE_DATES = {"llama.cpp/discussions/15013": "2025", "llama.cpp/discussions/15021": "2025",
                "llama.cpp/discussions/10879": "2024-12"}


def correct_row(row: dict) -> bool:
    """Corrections to the measurements in the project's copy (docs/catalog.md); True if the row was changed.

    TensorRT-LLM's v0.6.1 "Peak Throughput" A100 table heads its column "out tok/s" where the H100 table says
    "out tok/s/GPU", but its multi-GPU rows are per-GPU figures too: read as totals, TP2 to TP8 on A100 would
    reach 4-18% of the aggregate bandwidth while the same engine reaches 75-81% on one A100 and 48-58% at TP2-TP8
    on H100; times the GPU count they reach 34-75%. They are multiplied by `devices`, as the H100 rows were."""
    if ("NVIDIA/TensorRT-LLM" in row["source"] and row["metric"] == "throughput_tok_s"
            and row["hardware"].startswith("NVIDIA A100") and int(row["devices"]) > 1):
        row["value"] = "%g" % (float(row["value"]) * int(row["devices"]))
        row["notes"] += (f"; project correction: the A100 table's figure is per GPU, x {row['devices']} GPUs "
                         "(llm-roofline docs/catalog.md)")
        return True
    return False


def fill_rows(text: str, ids: dict[str, str]) -> tuple[str, int]:
    """The CSV with hardware_id filled where it was empty and the device is an added one, a build_date column
    (from the source's text, else SOURCE_DATES) and correct_row applied; the count of ids filled."""
    reader = csv.DictReader(io.StringIO(text))
    out = io.StringIO()
    writer = csv.DictWriter(out, [*reader.fieldnames, "build_date"], lineterminator="\n")
    writer.writeheader()
    filled = 0
    for row in reader:
        if not row["hardware_id"] and row["hardware"] in ids:
            row["hardware_id"] = ids[row["hardware"]]
            filled += 1
        row["build_date"] = build_date(row["source"]) or next(
            (date for key, date in SOURCE_DATES.items() if key in row["source"]), "")
        correct_row(row)
        writer.writerow(row)
    return out.getvalue(), filled


def build_models_index(shared: Path) -> dict[str, dict]:
    index: dict[str, dict] = {}
    for line in (shared / "models" / "INDEX.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 7 or not (shared / "models" / f"{cells[0]}.json").exists():
            continue
        repo = re.match(r"[\w.-]+/[\w.-]+", cells[1])
        index[cells[0]] = {
            "hf_repo": repo.group(0) if repo else None,
            "config_source": cells[2],
            "fidelity": cells[3],
            "official_params": cells[4],
            "doubts": cells[6],
        }
    return index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args()
    shared: Path = args.shared

    hardware = build_hardware(shared)
    added, measured_as, extra = added_hardware()
    unknown = set(extra) - {r["id"] for r in hardware}
    if unknown:
        raise SystemExit(f"data/hardware-added.yaml extends devices hardware.yaml lacks: {sorted(unknown)}")
    hardware = [{**r, **extra.get(r["id"], {})} for r in hardware]
    hardware += added
    check_unique_names(hardware)
    (CATALOG / "hardware.json").write_text(json.dumps(hardware, indent=1) + "\n")

    models_dir = CATALOG / "models"
    for old in models_dir.glob("*.json"):
        old.unlink()
    for src in sorted((shared / "models").glob("*.json")):
        shutil.copyfile(src, models_dir / src.name)
    index = build_models_index(shared)
    missing = sorted(p.stem for p in models_dir.glob("*.json") if p.stem not in index)
    if missing:
        raise SystemExit(f"models without an INDEX.md row: {missing}")
    (CATALOG / "models_index.json").write_text(json.dumps(index, indent=1, sort_keys=True) + "\n")

    text, filled = fill_rows((shared / "measurements" / "dev.csv").read_text(), measured_as)
    (CATALOG / "measurements_dev.csv").write_text(text)
    print(f"{len(hardware)} devices ({len(added)} added), {len(index)} models, measurements copied "
          f"({filled} rows given an added device's id) -> {CATALOG}")


if __name__ == "__main__":
    main()
