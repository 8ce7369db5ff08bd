"""Data shipped with the package (rebuilt from the curated source data by scripts/sync_catalog.py)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

CATALOG_DIR = Path(__file__).resolve().parent
MODELS_DIR = CATALOG_DIR / "models"
MEASUREMENTS_CSV = CATALOG_DIR / "measurements_dev.csv"


@cache
def hardware_records() -> tuple[dict, ...]:
    return tuple(json.loads((CATALOG_DIR / "hardware.json").read_text()))


@cache
def models_index() -> dict[str, dict]:
    return json.loads((CATALOG_DIR / "models_index.json").read_text())


def model_ids() -> list[str]:
    return sorted(p.stem for p in MODELS_DIR.glob("*.json"))


def normalize_name(name: str) -> str:
    """Case, spaces and underscores do not matter in names people type."""
    return name.strip().lower().replace("_", "-").replace(" ", "-")
