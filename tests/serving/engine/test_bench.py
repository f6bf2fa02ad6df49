"""The batching benchmark runs end to end (its numbers are reported by hand; here only its shape is checked)."""

from __future__ import annotations

from serving.engine.bench import compare_batching


def test_compare_batching_reports_both_modes(demo_model_dir):
    report = compare_batching(str(demo_model_dir), concurrency=3, max_tokens=5, rounds=1)
    for mode in ("batching_off", "batching_on"):
        assert report[mode]["output_tokens"] == 15  # counted from usage: ignore_eos makes it exactly max_tokens
        assert report[mode]["tokens_per_s"] > 0
    assert report["speedup"] > 0
