"""``vllm bench serve``, once per line on stdin, in one interpreter: for ``make bench-serving``.

``.venv-vllm/bin/python -m benchmarks.vllm_bench_runner`` (cwd and PYTHONPATH the repository root)

Why: starting ``vllm bench serve`` costs 25-50 s of imports on a busy 2-core machine, every time, and the
benchmark alternates it with our own client over several rounds. This runner pays that once: it loads vLLM's
command line (through ``serving.vllm_cpu``, the launcher the rest of AICP uses), then, for each stdin line (a
JSON list of arguments), runs exactly what ``vllm bench serve ARGS`` runs, vLLM's own CLI entry point with
``sys.argv`` set, and answers one JSON line. Nothing of vLLM's benchmark is replaced or re-implemented; its
results are the JSON files it writes itself (``--save-result``).

Protocol: stdout carries only the answers, ``{"ready": true}`` once loaded, then ``{"ok": true}`` or
``{"ok": false, "error": "..."}`` per request; everything vLLM prints goes to stderr. EOF on stdin ends it.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import traceback


def main() -> None:
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # from here on, fd 1 (vLLM's table, its loggers) is the log: only `answers` reaches the caller

    def answer(**fields) -> None:
        sys.stdout.flush()
        answers.write(json.dumps(fields) + "\n")

    from serving.vllm_cpu.__main__ import main as vllm_cli

    def vllm(args: list[str]) -> None:
        sys.argv = ["vllm", "bench", "serve", *args]
        try:
            vllm_cli()
        except SystemExit as exc:  # argparse's errors and --help
            if exc.code not in (0, None):
                raise RuntimeError(f"vllm bench serve exited with {exc.code}") from None

    with contextlib.redirect_stdout(io.StringIO()):
        vllm(["--help"])  # imports vLLM's CLI and its benchmark modules: the cost this runner exists to pay once
    answer(ready=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            vllm(json.loads(line))
        except Exception as exc:  # the caller decides; this process keeps serving
            traceback.print_exc()
            answer(ok=False, error=f"{type(exc).__name__}: {exc}")
        else:
            answer(ok=True)


if __name__ == "__main__":
    main()
