"""Fixtures: the demo model built once per session (few training steps, deterministic) and engines serving it."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

DEMO_TRAIN_STEPS = 40  # a few seconds on CPU; enough for clear argmax gaps, so greedy comparisons are robust


@pytest.fixture(scope="session")
def demo_model_dir(tmp_path_factory):
    import torch

    from serving.demo_model import build

    # One intra-op thread: the model is tiny, and on a busy 2-core machine a second OpenMP thread that gets
    # descheduled stalls every kernel (measured: up to 10x slower). Also makes timings steadier.
    torch.set_num_threads(1)

    return build(tmp_path_factory.mktemp("demo_model"), seed=0, train_steps=DEMO_TRAIN_STEPS, log=lambda *_: None)


def _serve(model_dir, **engine_kwargs):
    from serving.engine.core import Engine
    from serving.engine.server import BackgroundServer

    return BackgroundServer(Engine(model_dir, **engine_kwargs), served_model_name="demo").start()


@pytest.fixture(scope="session")
def server(demo_model_dir):
    """An engine with batching on, on a free port."""
    srv = _serve(demo_model_dir, batching=True, max_batch_size=16)
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def server_off(demo_model_dir):
    srv = _serve(demo_model_dir, batching=False)
    yield srv
    srv.stop()


@pytest.fixture
def client(server):
    import openai

    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0, timeout=60)
