"""Run by vLLM's own interpreter (``.venv-vllm``): parse command lines with ``vllm serve``'s argument parser.

stdin: a JSON list of argument lists, each starting at ``serve`` (what follows ``vllm`` or the launcher).
stdout: a JSON list, one ``{"ok": bool, "error": str}`` per command. The parser is built as vLLM's CLI builds it
(``vllm.entrypoints.cli.main``), then vLLM's own post-parse check (``ServeSubcommand.validate``) runs, and the
engine arguments are built from the namespace (``AsyncEngineArgs.from_cli_args``), which is where vLLM turns the
flags into typed settings. Nothing is started. Stricter than vLLM in one way: a flag must be spelt in full.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import io
import json
import sys
import tempfile

from serving.vllm_cpu.__main__ import version

importlib.metadata.version = version


def parser() -> argparse.ArgumentParser:
    from vllm.entrypoints.cli import serve
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    top = FlexibleArgumentParser(prog="vllm")
    subparsers = top.add_subparsers(dest="subparser")
    commands = {}
    for command in serve.cmd_init():
        # vLLM's parser takes any unambiguous prefix of a flag (argparse's default); a rendered command must
        # spell every flag out, so prefixes are refused here.
        command.subparser_init(subparsers).allow_abbrev = False
        commands[command.name] = command
    return top, commands


def check(argv: list[str], model_dir: str) -> dict:
    from vllm.engine.arg_utils import AsyncEngineArgs

    # The model's path is where the task's volume or storage folder will be; an empty folder stands in for it, so
    # that vLLM does not try to resolve it on a hub.
    argv = [argv[0], model_dir, *argv[2:]]
    top, commands = parser()
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            args = top.parse_args(argv)
        commands[args.subparser].validate(args)
        if args.model_tag is not None:  # as ``vllm serve`` does before it builds its engine arguments
            args.model = args.model_tag
        AsyncEngineArgs.from_cli_args(args)
    except SystemExit:
        return {"ok": False, "error": errors.getvalue().strip().splitlines()[-1] if errors.getvalue() else "exit"}
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return {"ok": True, "error": ""}


def main() -> None:
    with tempfile.TemporaryDirectory() as model_dir:
        json.dump([check(argv, model_dir) for argv in json.load(sys.stdin)], sys.stdout)


if __name__ == "__main__":
    main()
