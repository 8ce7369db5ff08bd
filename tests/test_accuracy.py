"""Regression gate: the leave-one-source-out error on the shipped data must not get worse than the figures
documented in docs/accuracy.json (written by benchmarks/accuracy.py) by more than one point."""

import json
from pathlib import Path

import numpy as np

from llm_roofline.calibrate import RowSet, leave_one_source_out
from llm_roofline.catalog import MEASUREMENTS_CSV
from llm_roofline.validate import METRICS, read_measurements, row_model

DOCUMENTED = json.loads((Path(__file__).resolve().parents[1] / "docs" / "accuracy.json").read_text())


def test_leave_one_source_out_error_does_not_regress():
    rows, _ = read_measurements(MEASUREMENTS_CSV)
    rowset = RowSet([row_model(m) for m in rows])
    estimate = leave_one_source_out(rowset)
    err = np.abs(100 * (estimate - rowset.measured) / rowset.measured)
    ceilings = rowset.ceilings()
    for metric, documented in DOCUMENTED["leave_one_source_out"].items():
        sel = rowset.metric == METRICS.index(metric)
        assert sel.sum() == documented["n"], metric
        assert np.median(err[sel]) <= documented["median_abs_error_pct"] + 1.0, metric
    # the ceiling is a physical bound: no public measurement beats it by more than 3%
    time_metric = np.isin(rowset.metric, [METRICS.index("ttft_ms"), METRICS.index("tpot_ms")])
    beats = np.where(time_metric, rowset.measured < ceilings / 1.03, rowset.measured > ceilings * 1.03)
    assert not beats.any()


def test_shipped_ranges_cover_about_80_percent_of_held_out_sources():
    """The calibration's own measurement: for each source, the range built from the other sources' residuals
    holds 75-85% of its decode and prefill rows."""
    from llm_roofline.engines import PROFILES_JSON, load_profiles

    _, _, meta = load_profiles(PROFILES_JSON)
    coverage = meta["leave_one_source_out_range_coverage"]
    for kind in ("decode", "prefill"):
        assert 75 <= coverage[kind]["covered_pct"] <= 85, (kind, coverage[kind])
