"""Latency histograms with a bounded relative error, mergeable by adding counts.

A value ``v`` (milliseconds) falls in bin ``ceil(log(v) / log(GAMMA))``; bin ``i`` covers
``(GAMMA**(i-1), GAMMA**i]`` and reads back as ``2 * GAMMA**i / (GAMMA + 1)``, which is within ``ALPHA``
(1 %) of every value in the bin. Values below ``MIN_MS`` count as ``MIN_MS``. This is the scheme of
DDSketch with a dense key space: two histograms merge by adding the counts of equal bins, so an hour's
roll-up is the sum of its requests and a month is the sum of its days.

The adapter bins each request's chunk gaps with the same formula (its ``itl_hist`` field, see
``serving/adapter/metrics.py``): the two sides agree by contract, checked by ``tests/telemetry/test_sketch.py``.

A histogram is a ``dict`` from the bin (a string: it is stored as a JSON object) to its count.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

ALPHA = 0.01
GAMMA = (1 + ALPHA) / (1 - ALPHA)
MIN_MS = 0.001
_LOG_GAMMA = math.log(GAMMA)

Histogram = dict[str, int]


def bin_of(ms: float) -> int:
    return math.ceil(math.log(max(ms, MIN_MS)) / _LOG_GAMMA)


def value_of(index: int) -> float:
    return 2 * GAMMA**index / (GAMMA + 1)


def histogram(values: Iterable[float]) -> Histogram:
    hist: Histogram = {}
    for value in values:
        key = str(bin_of(value))
        hist[key] = hist.get(key, 0) + 1
    return hist


def merge(into: Histogram, other: Mapping[str, int] | None) -> Histogram:
    """Add ``other``'s counts to ``into`` (in place) and return it."""
    if other:
        get = into.get
        for key, count in other.items():
            into[key] = get(key, 0) + count
    return into


def count(hist: Mapping[str, int]) -> int:
    return sum(hist.values())


def quantiles(hist: Mapping[str, int], qs: Iterable[float]) -> list[float | None]:
    """The nearest-rank quantiles: for ``q`` the value of the ``ceil(q * n)``-th smallest of ``n`` values.

    None for an empty histogram. Each answer is within ``ALPHA`` of that value.
    """
    total = count(hist)
    qs = list(qs)
    if not total:
        return [None] * len(qs)
    ranks = [max(1, math.ceil(q * total)) for q in qs]
    answers: list[float | None] = [None] * len(qs)
    seen = 0
    order = sorted(range(len(qs)), key=ranks.__getitem__)
    pending = 0
    for index in sorted(hist, key=int):
        seen += hist[index]
        while pending < len(order) and ranks[order[pending]] <= seen:
            answers[order[pending]] = value_of(int(index))
            pending += 1
        if pending == len(order):
            break
    return answers
