"""The demo model, built on this machine once and then reused.

Why a cache: training the tiny model (``serving.demo_model``) takes tens of seconds on a small CPU, and neither a
reset of the embedded default (deleting ``var/``) nor the fresh ``var/`` of every ``make demo-check`` should pay
for it again. So the model lives outside ``var/``, by default inside the virtual environment that ``make run``
installs into (``rm -rf .venv`` removes it with everything else that was built). Its folder is named after the
build parameters; a build goes to a temporary sibling, is renamed into place when complete, and holds a file
lock meanwhile, so two processes never build twice or read half a model.

No Django here: ``benchmarks.demo_check`` builds the cache before it starts its clock.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

DEMO_MODEL_SEED = 0
# About 40 s on two cores. After 100 steps the model strings words together; after 300 it answers with short
# sentences that end (it has learned to emit <|im_end|>), which is what a newcomer's first call should see.
DEMO_MODEL_TRAIN_STEPS = 300


def default_cache_dir() -> Path:
    """``AICP_DEMO_MODEL_CACHE``, else a folder in the active virtual environment, else the user's cache."""
    if configured := os.environ.get("AICP_DEMO_MODEL_CACHE"):
        return Path(configured)
    if sys.prefix != sys.base_prefix:
        return Path(sys.prefix) / "aicp-demo-model"
    return Path.home() / ".cache" / "aicp" / "demo-model"


def train_steps_from_environment() -> int:
    return int(os.environ.get("AICP_DEMO_MODEL_TRAIN_STEPS", DEMO_MODEL_TRAIN_STEPS))


@dataclass(frozen=True)
class DemoModelFolder:
    path: Path
    build_s: float | None  # seconds spent building it now; None when it came from the cache


def demo_model_path(cache_dir: Path, *, seed: int, train_steps: int) -> Path:
    return cache_dir / f"seed{seed}-steps{train_steps}"


def ensure_demo_model(
    cache_dir: Path | None = None,
    *,
    seed: int = DEMO_MODEL_SEED,
    train_steps: int | None = None,
    log: Callable[[str], None] = print,
) -> DemoModelFolder:
    """The folder of the demo model for ``seed`` and ``train_steps``, built first if the cache lacks it."""
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    train_steps = train_steps_from_environment() if train_steps is None else train_steps
    folder = demo_model_path(cache_dir, seed=seed, train_steps=train_steps)
    if (folder / "config.json").is_file():
        return DemoModelFolder(folder, None)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second builder waits here, then finds the folder built
        if (folder / "config.json").is_file():
            return DemoModelFolder(folder, None)
        started = time.monotonic()
        building = cache_dir / f".building-{uuid.uuid4().hex}"
        try:
            _build(building, seed=seed, train_steps=train_steps, log=log)
            building.rename(folder)
        finally:
            shutil.rmtree(building, ignore_errors=True)
        build_s = time.monotonic() - started
        log(f"demo model built in {build_s:.0f} s: {folder}")
        return DemoModelFolder(folder, build_s)


def _build(out: Path, *, seed: int, train_steps: int, log: Callable[[str], None]) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the build never downloads; say so to transformers too
    from transformers.utils import logging as transformers_logging

    from serving.demo_model import build

    transformers_logging.disable_progress_bar()
    log(f"building the demo model once ({train_steps} training steps on the CPU; cached in {out.parent})")

    def progress(line: str) -> None:
        if not line.startswith("demo model written"):  # it names the temporary folder; the caller names the real one
            log(f"demo model: {line}")

    build(out, seed=seed, train_steps=train_steps, log=progress)
