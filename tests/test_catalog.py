"""The shipped catalogs are the team data (../shared/data) as of the last scripts/sync_catalog.py run."""

import filecmp

import pytest

from llm_roofline import catalog

SHARED = catalog.CATALOG_DIR.parents[3] / "shared" / "data"


@pytest.mark.skipif(not SHARED.exists(), reason="../shared not beside the checkout")
def test_shipped_model_configs_match_shared():
    shipped = sorted(p.name for p in catalog.MODELS_DIR.glob("*.json"))
    assert shipped == sorted(p.name for p in (SHARED / "models").glob("*.json"))
    for name in shipped:
        assert filecmp.cmp(catalog.MODELS_DIR / name, SHARED / "models" / name, shallow=False), name


def test_every_model_has_an_index_entry_with_a_repo():
    index = catalog.models_index()
    assert set(index) == set(catalog.model_ids())
    assert all(entry["hf_repo"] for entry in index.values())


def test_hardware_aliases_are_unique():
    names = [n for r in catalog.hardware_records() for n in (r["id"], *r["aliases"])]
    assert len(names) == len(set(names))
