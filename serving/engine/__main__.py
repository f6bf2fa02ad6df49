"""``python -m serving.engine --model DIR [--host 127.0.0.1] [--port 8001] [--served-model-name NAME]
[--batching on|off] [--max-batch-size 16] [--device cpu|cuda] [--dtype float32|bfloat16|float16] [--threads N]
[--max-request-bytes 16777216]``.

``--threads`` defaults to about half of the CPUs the process may use (``serving.engine.threads`` says why).
"""

from __future__ import annotations

import argparse
import logging
import os

from serving.request_size import DEFAULT_MAX_REQUEST_BYTES

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # models come from local folders only, never from a hub


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    # allow_abbrev=False: a flag is spelt in full, so a misspelt one in a rendered command is an error.
    parser = argparse.ArgumentParser(
        prog="python -m serving.engine", description="AICP normal-mode engine", allow_abbrev=False
    )
    parser.add_argument("--model", required=True, help="local Hugging Face model folder")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--served-model-name", default=None, help="the `model` callers use (default: folder name)")
    parser.add_argument("--batching", choices=["on", "off"], default="on")
    parser.add_argument("--max-batch-size", type=int, default=16)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op CPU threads (default: half the CPUs of the affinity mask and cgroup quota, at least 1;"
        " 0: torch's own default)",
    )
    parser.add_argument(
        "--max-request-bytes",
        type=int,
        default=DEFAULT_MAX_REQUEST_BYTES,
        help="largest request body accepted, in bytes; a larger one is refused with a 413 naming the limit"
        " (default 16777216 = 16 MiB: a 128k-token context as JSON, with room for escapes and list-of-parts content)",
    )
    args = parser.parse_args(argv)
    if args.max_request_bytes < 1:
        parser.error("--max-request-bytes must be at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import torch
    from aiohttp import web

    from serving.engine.core import Engine
    from serving.engine.server import build_app
    from serving.engine.threads import default_threads

    threads = default_threads() if args.threads is None else args.threads
    if threads > 0:
        torch.set_num_threads(threads)
    logging.getLogger(__name__).info("torch intra-op threads: %d", torch.get_num_threads())
    engine = Engine(
        args.model,
        batching=args.batching == "on",
        max_batch_size=args.max_batch_size,
        device=args.device,
        dtype=args.dtype,
    )
    name = args.served_model_name or os.path.basename(os.path.normpath(args.model))
    try:
        web.run_app(
            build_app(engine, name, args.max_request_bytes),
            host=args.host,
            port=args.port,
            print=logging.getLogger(__name__).info,
            handler_cancellation=True,  # a caller that hangs up stops its generation, streaming or not
        )
    finally:
        engine.shutdown()


if __name__ == "__main__":
    main()
