"""The server-side SVG charts of a task's latency page."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

from inference_jobs.charts import Line, axis_label, line_chart, nice_ceiling, segments

SVG = "{http://www.w3.org/2000/svg}"
START = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def minutes(count: int) -> list[datetime]:
    return [START + timedelta(minutes=i) for i in range(count)]


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def points(polyline: ET.Element) -> list[tuple[float, float]]:
    return [tuple(map(float, pair.split(","))) for pair in polyline.get("points").split()]


def test_a_series_becomes_one_polyline_with_a_point_per_value_rising_with_the_value():
    svg = parse(line_chart(title="TTFT", unit="ms", times=minutes(6), lines=[Line("p50", [10, 20, 30, 40, 50, 60])]))
    [polyline] = svg.iter(f"{SVG}polyline")
    drawn = points(polyline)
    assert len(drawn) == 6
    xs, ys = zip(*drawn, strict=True)
    assert list(xs) == sorted(xs) and len(set(xs)) == 6  # left to right, evenly spread
    assert list(ys) == sorted(ys, reverse=True)  # larger values higher up (smaller y)
    assert polyline.get("data-series") == "p50"


def test_the_axes_are_labelled_from_zero_to_a_round_maximum_and_with_times():
    svg = parse(
        line_chart(title="TPOT", unit="ms", times=minutes(61), lines=[Line("p90", [float(i) for i in range(61)])])
    )
    y_labels = [text.text for text in svg.iter(f"{SVG}text") if text.get("class") == "y-label"]
    x_labels = [text.text for text in svg.iter(f"{SVG}text") if text.get("class") == "x-label"]
    assert y_labels == ["0", "25", "50", "75", "100"]
    assert x_labels == ["12:00", "12:30", "13:00"]
    assert svg.find(f"{SVG}title").text == "TPOT"


def test_missing_values_break_the_line_and_a_lone_value_is_a_dot():
    lines = [Line("p50", [1, 2, None, 4, None, None, 7, 8, 9])]
    svg = parse(line_chart(title="TTFT", unit="ms", times=minutes(9), lines=lines))
    assert [len(points(p)) for p in svg.iter(f"{SVG}polyline")] == [2, 3]
    assert len(list(svg.iter(f"{SVG}circle"))) == 1


def test_two_series_and_a_target_line():
    lines = [Line("p50", [100, 120]), Line("p90", [300, 350])]
    svg = parse(line_chart(title="TTFT", unit="ms", times=minutes(2), lines=lines, target=2000))
    assert {p.get("data-series") for p in svg.iter(f"{SVG}polyline")} == {"p50", "p90"}
    assert [line for line in svg.iter(f"{SVG}line") if line.get("class") == "target"]
    assert "target 2000" in ET.tostring(svg, encoding="unicode")


def test_a_window_without_requests_says_so():
    svg = line_chart(title="Goodput", unit="requests/s", times=minutes(3), lines=[Line("good", [None, None, None])])
    assert "No requests in this window" in svg
    assert "<polyline" not in svg


def test_labels_are_escaped():
    svg = line_chart(title="<script>", unit="ms", times=minutes(2), lines=[Line('a"b', [1, 2])])
    assert "<script>" not in svg
    parse(svg)


def test_helpers():
    assert [nice_ceiling(v) for v in (0, 0.7, 3, 7, 101, 2000, 2001)] == [1, 1, 5, 10, 200, 2000, 2500]
    assert [axis_label(v) for v in (0, 0.125, 62.5, 2000, 12_500, 2_500_000)] == [
        "0",
        "0.125",
        "62.5",
        "2000",
        "12.5k",
        "2.5M",
    ]
    assert segments([None, 1, 2, None, 3]) == [[(1, 1.0), (2, 2.0)], [(4, 3.0)]]
