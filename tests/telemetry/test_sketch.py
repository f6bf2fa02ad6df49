"""The latency histograms: the adapter's ITL bins and the control plane's are the same bins (a wire contract),
and a quantile read from a histogram is within 1 % of the exact nearest-rank value."""

from __future__ import annotations

import math
import random

import pytest

from serving.adapter import metrics as adapter_metrics
from telemetry import sketch


def test_the_adapter_bins_gaps_exactly_as_the_control_plane_reads_them():
    rng = random.Random(5)
    values = [1e-6, 0.0005, 0.001, 0.3, 1.0, 7.77, 12.0, 250.0, 1e5, *(rng.lognormvariate(3, 2) for _ in range(5000))]
    for ms in values:
        assert adapter_metrics.itl_bin(ms) == sketch.bin_of(ms), ms
    assert (adapter_metrics.ITL_HIST_ALPHA, adapter_metrics.ITL_HIST_MIN_MS) == (sketch.ALPHA, sketch.MIN_MS)
    gaps_s = [ms / 1000 for ms in values[:200]]
    assert adapter_metrics.itl_histogram(gaps_s) == {k: v for k, v in sorted(sketch.histogram(values[:200]).items())}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_quantiles_are_within_one_percent_of_the_nearest_rank(seed):
    rng = random.Random(seed)
    values = [rng.lognormvariate(math.log(300), 1.0) for _ in range(rng.randint(1, 3000))]
    ordered = sorted(values)
    qs = (0.0001, 0.5, 0.9, 0.99, 1.0)
    for q, answer in zip(qs, sketch.quantiles(sketch.histogram(values), qs), strict=True):
        exact = ordered[max(1, math.ceil(q * len(ordered))) - 1]
        assert abs(answer - exact) <= sketch.ALPHA * exact, (q, answer, exact)


def test_merging_histograms_equals_binning_everything_at_once():
    rng = random.Random(9)
    parts = [[rng.expovariate(1 / 40) for _ in range(rng.randint(0, 300))] for _ in range(12)]
    merged: dict = {}
    for part in parts:
        sketch.merge(merged, sketch.histogram(part))
    assert merged == sketch.histogram(v for part in parts for v in part)
    assert sketch.count(merged) == sum(map(len, parts))
    assert sketch.quantiles({}, [0.5]) == [None]
