from __future__ import annotations

import hashlib

import pytest

from serving.adapter.config import parse_config
from serving.adapter.proxy import Adapter
from tests.serving.adapter.fakes import FakeEngine, ServerThread

KEY = "aicp_sk_12_" + "s3cret" * 8
OTHER_KEY = "aicp_sk_13_" + "0ther" * 8


def make_config(**overrides) -> dict:
    config = {
        "task_id": 7,
        "tenant_id": 3,
        "served_model_name": "chat",
        "upstream_model": "engine-model",
        "system_prompt": "You are the task's assistant.",
        "sampling_policy": "defaults",
        "sampling": {"temperature": 0.7, "top_p": 0.9, "repetition_penalty": 1.1},
        "api_keys": [{"id": 12, "digest": hashlib.sha256(KEY.encode()).hexdigest()}],
        "tokens_per_minute": 1_000_000,
        "runtime_image_version": "1.2.0",
        "slo": {"ttft_ms": 2000, "tpot_ms": 100},
    }
    config.update(overrides)
    return config


@pytest.fixture
def engine():
    fake = FakeEngine()
    server = ServerThread(fake.app).start()
    fake.url = server.url
    yield fake
    server.stop()


@pytest.fixture
def start_adapter(engine):
    """Start an in-process adapter for a config (dict overrides of make_config); returns its base URL."""
    servers = []

    def start(**overrides) -> str:
        adapter = Adapter(parse_config(make_config(**overrides)), engine.url)
        server = ServerThread(adapter.app).start()
        server.adapter = adapter
        servers.append(server)
        return server.url

    yield start
    for server in servers:
        server.stop()
