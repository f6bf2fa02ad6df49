"""What a task's page shows about its traffic: latency charts and summary, and token usage.

Both read through the telemetry app's own reports (``telemetry.latency.task_latency``,
``telemetry.selectors.usage_summary``), the ones behind ``/api/v1/tasks/{id}/latency/`` and ``/api/v1/usage/``,
so the console and the API show the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from inference_jobs.charts import Line, line_chart
from inference_jobs.models import InferenceTask
from telemetry.latency import LatencyWindowError, task_latency
from telemetry.selectors import usage_summary


@dataclass(frozen=True)
class Window:
    key: str
    label: str
    span: timedelta


WINDOWS = (
    Window("1h", "Last hour", timedelta(hours=1)),
    Window("24h", "Last 24 hours", timedelta(days=1)),
    Window("7d", "Last 7 days", timedelta(days=7)),
)
DEFAULT_WINDOW = WINDOWS[0]
USAGE_DAYS = 7


def window_named(key: str | None) -> Window:
    return next((window for window in WINDOWS if window.key == key), DEFAULT_WINDOW)


def _percentile_series(series: list[dict], metric: str) -> list[Line]:
    return [Line(name, [point[metric][name] for point in series]) for name in ("p50", "p90")]


def latency_context(task: InferenceTask, window: Window, *, now: datetime | None = None) -> dict:
    """The report of ``window`` up to now, its four charts and its summary (default step: the report's)."""
    now = now or timezone.now()
    try:
        report = task_latency(task, since=now - window.span, until=now, source="auto", now=now)
    except LatencyWindowError as error:  # a window longer than the platform keeps its roll-ups
        return {"window": window, "windows": WINDOWS, "latency_error": error.message}
    series = report["series"]
    times = [point["start"] for point in series]
    targets = report["targets"]
    charts = [
        line_chart(title=title, unit="ms", times=times, lines=_percentile_series(series, key), target=targets[key])
        for title, key in (("Time to first token", "ttft_ms"), ("Time per output token", "tpot_ms"))
    ] + [
        line_chart(
            title="Throughput",
            unit="output tokens/s",
            times=times,
            lines=[Line("tokens/s", [point["output_tokens_per_s"] for point in series])],
        ),
        line_chart(
            title="Goodput",
            unit="requests/s",
            times=times,
            lines=[
                Line("within targets", [point["goodput_per_s"] for point in series]),
                Line("all requests", [point["requests_per_s"] for point in series]),
            ],
        ),
    ]
    summary = report["summary"]
    rows = [
        (label, summary[metric])
        for label, metric in (
            ("Time to first token (TTFT)", "ttft_ms"),
            ("Time per output token (TPOT)", "tpot_ms"),
            ("End to end (E2E)", "e2e_ms"),
        )
    ]
    return {
        "window": window,
        "windows": WINDOWS,
        "report": report,
        "charts": charts,
        "summary": summary,
        "summary_rows": rows,
        "step_minutes": report["step_s"] // 60,
    }


def usage_context(user, task: InferenceTask, *, now: datetime | None = None) -> dict:
    """Requests and tokens of the task per day of the last week (days without traffic as zeros) and per
    API key over the same days."""
    now = timezone.localtime(now or timezone.now())
    first_day = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=USAGE_DAYS - 1)
    by_day = usage_summary(user, since=first_day, until=now, group_by=["day"], task=task.pk)
    by_key = usage_summary(user, since=first_day, until=now, group_by=["api_key"], task=task.pk)
    seen = {timezone.localtime(row["day"]).date(): row for row in by_day["results"]}
    days = []
    for offset in range(USAGE_DAYS):
        day = (first_day + timedelta(days=offset)).date()
        row = seen.get(day, {})
        days.append(
            {
                "day": day,
                "requests": row.get("requests", 0),
                "input_tokens": row.get("input_tokens", 0),
                "output_tokens": row.get("output_tokens", 0),
            }
        )
    days.reverse()  # newest first, as the events are
    return {"usage_days": days, "usage_keys": by_key["results"], "usage_totals": by_day["totals"]}
