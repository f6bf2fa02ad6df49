"""``python -m serving.adapter --config FILE --upstream URL [--host 0.0.0.0] [--port 8080] [--reuse-port]``.

``--reuse-port`` sets SO_REUSEPORT on the listening socket, so that several adapters of one task (the local
orchestrator's instances) can bind the same port and the kernel spreads connections across them (Linux).
"""

from __future__ import annotations

import argparse
import logging
import sys

from aiohttp import web

from serving.adapter.config import ConfigError, load_config
from serving.adapter.proxy import Adapter


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.adapter", description=__doc__)
    parser.add_argument("--config", required=True, help="the task's JSON config (see serving/adapter/config.py)")
    parser.add_argument("--upstream", required=True, help="base URL of the engine, e.g. http://127.0.0.1:8000")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--reuse-port", action="store_true", help="share the port with other adapters (SO_REUSEPORT)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        import uvloop  # optional: faster event loop when installed
    except ImportError:
        uvloop = None
    adapter = Adapter(config, args.upstream)
    logging.getLogger(__name__).info(
        "adapter for task %s (model %r → %r) on %s:%s", config.task_id, config.served_model_name,
        config.upstream_model, args.host, args.port,
    )  # fmt: skip
    web.run_app(adapter.app(), host=args.host, port=args.port, access_log=None, print=None,
                reuse_port=args.reuse_port or None, loop=uvloop.new_event_loop() if uvloop else None)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
