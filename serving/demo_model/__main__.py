"""``python -m serving.demo_model --out DIR [--train-seconds 60 | --train-steps N] [--seed 0]``."""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from serving.demo_model import build


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build the tiny AICP demo model (no downloads).")
    parser.add_argument("--out", required=True, help="folder to write the Hugging Face model to")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-seconds", type=float, default=60.0, help="wall-clock training budget (0 = none)")
    parser.add_argument("--train-steps", type=int, default=None, help="exact step count (deterministic); wins")
    args = parser.parse_args(argv)
    build(args.out, seed=args.seed, train_seconds=args.train_seconds, train_steps=args.train_steps)


if __name__ == "__main__":
    main()
