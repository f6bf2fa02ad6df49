"""Latency, throughput and goodput of one task over a window: a summary and a time series ready to plot.

Definitions are SPEC's ("Performance metrics"), measured by the adapter per request (``serving/adapter``).
Latency percentiles describe successful requests (status < 400); every request counts in ``requests``.

Two sources, named in the answer (``source``):

* **raw** — exact percentiles from the stored request rows, by linear interpolation between the closest
  ranks (as ``numpy.percentile``). ``auto`` takes it when the window lies inside the raw retention and holds
  at most ``AICP_LATENCY_EXACT_MAX_REQUESTS`` requests; ``source=raw`` asks for it up to ten times that.
* **rollups** — hour and day roll-ups (``telemetry/sketch.py``): each percentile is the nearest-rank value
  within 1 %. The window widens to whole hours and the step to whole hours; a step of a day reads day rows
  for the whole days of the window and hour rows for its edges, so 30 days cost about 30 + 47 rows.

ITL percentiles come from histograms in both cases: each request reports its chunk gaps binned (1 %).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from datetime import datetime, timedelta
from itertools import pairwise

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from controlplane.errors import PlatformRuleError
from inference_jobs.models import InferenceTask
from telemetry import sketch
from telemetry.choices import Resolution
from telemetry.models import LatencyRollup, RequestMetric
from telemetry.periods import DAY, HOUR, day_of, hour_of, next_day, next_hour
from telemetry.rollups import LatencyDelta

QUANTILES = (0.5, 0.9, 0.99)
STEPS_S = (60, 300, 900, 3600, 21600, 86400)
AUTO_MAX_POINTS = 60  # the automatic step is the smallest that draws at most this many points
MAX_POINTS = 1500
SOURCES = ("auto", "raw", "rollups")


class LatencyWindowError(PlatformRuleError):
    code = "invalid_window"


def _percentile_labels(values: list[float | None]) -> dict[str, float | None]:
    return {f"p{round(q * 100)}": None if v is None else round(v, 3) for q, v in zip(QUANTILES, values, strict=True)}


def exact_percentiles(values: list[float]) -> list[float | None]:
    """Linear interpolation between the closest ranks (numpy.percentile's default)."""
    if not values:
        return [None] * len(QUANTILES)
    ordered = sorted(values)
    last = len(ordered) - 1
    answers = []
    for q in QUANTILES:
        position = last * q
        low = math.floor(position)
        high = min(low + 1, last)
        answers.append(ordered[low] + (ordered[high] - ordered[low]) * (position - low))
    return answers


class Bucket:
    """Requests of one period (a point of the series, or the whole window)."""

    def __init__(self, start: datetime, end: datetime):
        self.start, self.end = start, end
        self.seen = LatencyDelta()  # the counts, and for raw rows the latencies themselves

    def latency(self) -> dict[str, dict]:
        raise NotImplementedError

    def stats(self, now: datetime) -> dict:
        seconds = (min(self.end, now) - self.start).total_seconds()
        seen = self.seen

        def rate(amount: int) -> float | None:
            return float(f"{amount / seconds:.6g}") if seconds > 0 else None  # six significant digits

        return {
            "start": self.start,
            "end": self.end,
            "requests": seen.requests,
            "errors": seen.errors,
            "good": seen.good,
            "input_tokens": seen.input_tokens,
            "output_tokens": seen.output_tokens,
            "requests_per_s": rate(seen.requests),
            "output_tokens_per_s": rate(seen.output_tokens),
            "goodput_per_s": rate(seen.good),
            "good_ratio": float(f"{seen.good / seen.requests:.6g}") if seen.requests else None,
            **self.latency(),
            "itl_ms": _percentile_labels(sketch.quantiles(seen.itl, QUANTILES)),
        }


class RawBucket(Bucket):
    def add(self, *values) -> None:
        self.seen.add_request(*values)

    def latency(self) -> dict[str, dict]:
        seen = self.seen
        return {
            name: _percentile_labels(exact_percentiles(values))
            for name, values in (("ttft_ms", seen.ttft), ("tpot_ms", seen.tpot), ("e2e_ms", seen.e2e))
        }


class RollupBucket(Bucket):
    def __init__(self, start, end):
        super().__init__(start, end)
        self.hists: dict[str, sketch.Histogram] = {"ttft_ms": {}, "tpot_ms": {}, "e2e_ms": {}}

    def add(self, rollup: LatencyRollup) -> None:
        self.seen.add_counts(rollup.requests, rollup.errors, rollup.good, rollup.input_tokens, rollup.output_tokens)
        sketch.merge(self.hists["ttft_ms"], rollup.ttft_hist)
        sketch.merge(self.hists["tpot_ms"], rollup.tpot_hist)
        sketch.merge(self.hists["e2e_ms"], rollup.e2e_hist)
        sketch.merge(self.seen.itl, rollup.itl_hist)

    def merge(self, other: RollupBucket) -> None:
        o = other.seen
        self.seen.add_counts(o.requests, o.errors, o.good, o.input_tokens, o.output_tokens)
        for name, hist in other.hists.items():
            sketch.merge(self.hists[name], hist)
        sketch.merge(self.seen.itl, o.itl)

    def latency(self) -> dict[str, dict]:
        return {name: _percentile_labels(sketch.quantiles(hist, QUANTILES)) for name, hist in self.hists.items()}


def task_latency(
    task: InferenceTask,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    step_s: int | None = None,
    source: str = "auto",
    now: datetime | None = None,
) -> dict:
    """The task's latency report; raises ``LatencyWindowError`` (naming the parameter) for a window it
    cannot answer."""
    now = now or timezone.now()
    until = until or now
    since = since or until - HOUR
    if since >= until:
        raise LatencyWindowError("since must be before until.", field="since")
    if until - since > timedelta(days=settings.AICP_METRICS_ROLLUP_RETENTION_DAYS):
        days = settings.AICP_METRICS_ROLLUP_RETENTION_DAYS
        raise LatencyWindowError(f"A window may span at most {days} days (the roll-up retention).", field="since")
    if source not in SOURCES:
        raise LatencyWindowError(f"source must be one of {', '.join(SOURCES)}.", field="source")
    if step_s is not None and step_s not in STEPS_S:
        allowed = ", ".join(str(s) for s in STEPS_S)
        raise LatencyWindowError(f"step must be one of {allowed} seconds.", field="step")
    step_s = step_s or _auto_step(until - since)
    if (until - since) / timedelta(seconds=step_s) > MAX_POINTS:
        raise LatencyWindowError(f"That step draws more than {MAX_POINTS} points; choose a larger one.", field="step")

    use_raw = source == "raw" or (source == "auto" and _raw_fits(task, since, until, now))
    if source == "raw":
        _check_raw(task, since, until, now)
    if use_raw:
        summary, series = _from_raw(task, since, until, step_s)
    else:
        since, until = hour_of(since), next_hour(until)
        step_s = max(step_s, 3600)
        summary, series = _from_rollups(task, since, until, step_s)
    return {
        "task": task.pk,
        "since": since,
        "until": until,
        "step_s": step_s,
        "source": "raw" if use_raw else "rollups",
        "relative_error": 0.0 if use_raw else sketch.ALPHA,
        "targets": {"ttft_ms": task.ttft_slo_ms, "tpot_ms": task.tpot_slo_ms},
        "summary": summary.stats(now),
        "series": [bucket.stats(now) for bucket in series],
    }


def _auto_step(span: timedelta) -> int:
    for step in STEPS_S:
        if span / timedelta(seconds=step) <= AUTO_MAX_POINTS:
            return step
    return STEPS_S[-1]


def _raw_rows(task, since, until):
    return RequestMetric.objects.filter(task_id=task.pk, started_at__gte=since, started_at__lt=until)


def _within_raw_retention(since: datetime, now: datetime) -> bool:
    return since >= now - timedelta(days=settings.AICP_METRICS_RAW_RETENTION_DAYS)


def _raw_fits(task, since, until, now) -> bool:
    if not _within_raw_retention(since, now):
        return False
    return _raw_rows(task, since, until).count() <= settings.AICP_LATENCY_EXACT_MAX_REQUESTS


def _check_raw(task, since, until, now) -> None:
    if not _within_raw_retention(since, now):
        days = settings.AICP_METRICS_RAW_RETENTION_DAYS
        raise LatencyWindowError(f"Raw request rows are kept {days} days; use source=rollups.", field="source")
    limit = settings.AICP_LATENCY_EXACT_MAX_REQUESTS * 10
    if _raw_rows(task, since, until).count() > limit:
        raise LatencyWindowError(f"The window holds more than {limit} requests; use source=rollups.", field="source")


def _from_raw(task, since, until, step_s):
    step = timedelta(seconds=step_s)
    summary = RawBucket(since, until)
    series = []
    start = since
    while start < until:
        series.append(RawBucket(start, min(start + step, until)))
        start += step
    fields = ("started_at", "status", "ttft_ms", "tpot_ms", "e2e_ms", "itl_hist", "good", "input_tokens",
              "output_tokens")  # fmt: skip
    for started_at, *values in _raw_rows(task, since, until).values_list(*fields).iterator(chunk_size=5000):
        summary.add(*values)
        series[int((started_at - since) / step)].add(*values)
    return summary, series


def _from_rollups(task, since, until, step_s):
    """``since`` and ``until`` are whole hours; whole days of a daily series are read from day rows."""
    first_day, last_day_end = next_day(since), day_of(until)
    use_days = step_s == 86400 and first_day < last_day_end
    if use_days:
        edges = sorted({since, *_range(first_day, last_day_end, DAY), last_day_end, until})
        hour_rows = Q(start__gte=since, start__lt=first_day) | Q(start__gte=last_day_end, start__lt=until)
        wanted = Q(resolution=Resolution.HOUR) & hour_rows
        wanted |= Q(resolution=Resolution.DAY, start__gte=first_day, start__lt=last_day_end)
    else:
        edges = [*_range(since, until, timedelta(seconds=step_s)), until]
        wanted = Q(resolution=Resolution.HOUR, start__gte=since, start__lt=until)
    series = [RollupBucket(start, end) for start, end in pairwise(edges)]
    for rollup in LatencyRollup.objects.filter(wanted, task_id=task.pk).iterator(chunk_size=2000):
        series[bisect_right(edges, rollup.start) - 1].add(rollup)
    summary = RollupBucket(since, until)
    for bucket in series:
        summary.merge(bucket)
    return summary, series


def _range(start: datetime, end: datetime, step: timedelta):
    while start < end:
        yield start
        start += step
