"""The config file is validated at startup, with every problem named by its key."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from serving.adapter.config import ConfigError, parse_config
from tests.serving.adapter.conftest import make_config


def problems(**overrides) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(make_config(**overrides))
    return str(info.value)


def test_the_documented_example_parses():
    config = parse_config(
        make_config(
            reflow={"enabled": True, "sample_rate": 0.5, "redact": True, "spool_dir": "/tmp/x"},
            ingest={"url": "http://cp/api/v1/ingest", "token": "t", "batch_size": 50, "interval_s": 1},
        )
    )
    assert config.upstream_model == "engine-model" and config.locked is False
    assert config.sampling == {"temperature": 0.7, "top_p": 0.9, "repetition_penalty": 1.1}
    assert list(config.api_keys.values()) == [12]
    assert config.ingest.url == "http://cp/api/v1/ingest/"  # normalised with a trailing slash
    assert config.reflow.sample_rate == 0.5


def test_upstream_model_defaults_to_the_served_name():
    raw = make_config()
    del raw["upstream_model"]
    assert parse_config(raw).upstream_model == "chat"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"task_id": None}, "task_id: required, must be an integer"),
        ({"tenant_id": "3"}, "tenant_id: must be an integer, got '3'"),
        ({"served_model_name": ""}, "served_model_name: must be a non-empty string"),
        ({"sampling_policy": "strict"}, 'sampling_policy: must be "defaults" or "locked"'),
        ({"sampling": {"temperature": 3}}, "sampling.temperature: 3 is outside [0.0, 2.0]"),
        ({"sampling": {"top_p": 0}}, "sampling.top_p: 0 is outside (0.0, 1.0]"),
        ({"sampling": {"top_k": 5}}, "sampling.top_k: unknown parameter"),
        ({"api_keys": [{"id": 1, "digest": "abc"}]}, "api_keys[0].digest: must be 64 lowercase hex"),
        ({"tokens_per_minute": -1}, "tokens_per_minute: must be a non-negative integer"),
        ({"reflow": {"enabled": True}}, "reflow.enabled: needs an 'ingest' section"),
        ({"reflow": {"sample_rate": 2}}, "reflow.sample_rate: must be a number in [0, 1]"),
        ({"ingest": {"url": "cp", "token": ""}}, "ingest.url: must be an http(s) URL"),
        ({"tokens_per_mnute": 5}, "tokens_per_mnute: unknown key"),
    ],
)
def test_each_problem_is_named(overrides, message):
    assert message in problems(**overrides)


@pytest.mark.parametrize("batch_size", [0, 1001, -5, 2.5, True, "200"])
def test_the_ingest_batch_size_must_fit_what_the_control_plane_accepts(batch_size):
    ingest = {"url": "http://cp/api/v1/ingest/", "token": "t", "batch_size": batch_size}
    assert f"ingest.batch_size: must be an integer in [1, 1000], got {batch_size!r}" in problems(ingest=ingest)


@pytest.mark.parametrize("batch_size", [1, 1000])
def test_the_ingest_batch_size_limits_are_inclusive(batch_size):
    ingest = {"url": "http://cp/api/v1/ingest/", "token": "t", "batch_size": batch_size}
    assert parse_config(make_config(ingest=ingest)).ingest.batch_size == batch_size


def test_all_problems_are_reported_at_once():
    text = problems(task_id="x", sampling={"temperature": -1}, sampling_policy="nope")
    assert "task_id" in text and "sampling.temperature" in text and "sampling_policy" in text


def test_the_command_refuses_a_bad_config_with_a_clear_message(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(make_config(sampling={"temperature": 9})))
    run = [sys.executable, "-m", "serving.adapter", "--config", str(bad), "--upstream", "http://127.0.0.1:9"]
    result = subprocess.run(run, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "invalid adapter config" in result.stderr and "sampling.temperature: 9 is outside" in result.stderr
    (tmp_path / "broken.json").write_text("{not json")
    run[4] = str(tmp_path / "broken.json")
    result = subprocess.run(run, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "is not valid JSON" in result.stderr
