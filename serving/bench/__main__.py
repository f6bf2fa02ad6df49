"""``python -m serving.bench``: benchmark an OpenAI-compatible streaming endpoint, print vllm's result table.

Example::

    python -m serving.bench --url http://127.0.0.1:8000/v1 --concurrency 8 --num-requests 200 \\
        --goodput ttft:2000 tpot:100 --json out.json

Exit status: 0 when at least one request completed, 1 otherwise (or on bad arguments: 2).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys

from serving.bench.client import ENDPOINTS, BenchConfig, run_benchmark
from serving.bench.metrics import format_table, parse_goodput


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m serving.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="OpenAI base URL, e.g. http://127.0.0.1:8000/v1")
    parser.add_argument("--concurrency", type=int, default=1, help="requests in flight at most")
    parser.add_argument("--num-requests", type=int, default=100)
    parser.add_argument("--model", help="model name (default: the first of GET /models)")
    parser.add_argument("--api-key", help="sent as Authorization: Bearer KEY")
    parser.add_argument("--endpoint", choices=sorted(ENDPOINTS), default="chat")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--prompt-len", type=int, default=32, help="words in the synthetic prompt")
    parser.add_argument("--ignore-eos", action="store_true", help="send ignore_eos (vLLM extension)")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured requests sent first")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per request")
    parser.add_argument(
        "--goodput", nargs="+", default=[], metavar="NAME:MS", help="SLOs for goodput: ttft:MS tpot:MS e2e:MS"
    )
    parser.add_argument("--percentiles", default="50,90,99", help="comma-separated, e.g. 50,90,99")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON ('-': stdout)")
    args = parser.parse_args(argv)
    try:
        args.slos = parse_goodput(args.goodput)
        args.percentile_list = tuple(float(p) for p in args.percentiles.split(",") if p.strip())
    except ValueError as exc:
        parser.error(str(exc))
    if args.concurrency < 1 or args.num_requests < 1 or args.max_tokens < 1:
        parser.error("--concurrency, --num-requests and --max-tokens must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = BenchConfig(
        url=args.url,
        concurrency=args.concurrency,
        num_requests=args.num_requests,
        model=args.model,
        api_key=args.api_key,
        endpoint=args.endpoint,
        max_tokens=args.max_tokens,
        prompt_len=args.prompt_len,
        ignore_eos=args.ignore_eos,
        warmup=args.warmup,
        timeout_s=args.timeout,
        slos=args.slos,
        percentiles=args.percentile_list,
    )
    try:
        run = asyncio.run(run_benchmark(config))
    except Exception as exc:  # connection refused, bad model list, failed warm-up: say it plainly
        print(f"benchmark failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    errors = [r.error for r in run.results if not r.success]
    for error in sorted(set(errors))[:5]:
        print(f"failed ({errors.count(error)}x): {error}", file=sys.stderr)
    # With --json - stdout carries only the JSON document, so the table goes to stderr.
    table_out = sys.stderr if args.json == "-" else sys.stdout
    print(format_table(run.summary, concurrency=args.concurrency), file=table_out)
    if args.json:
        document = {
            "model": run.model,
            "endpoint": args.endpoint,
            "max_concurrency": args.concurrency,
            "num_requests": args.num_requests,
            "max_tokens": args.max_tokens,
            "slos_ms": args.slos,
            # NaN is not JSON: a metric without samples is null.
            **{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in run.summary.items()},
        }
        text = json.dumps(document, indent=2)
        if args.json == "-":
            print(text)
        else:
            with open(args.json, "w", encoding="utf-8") as fh:
                fh.write(text + "\n")
    return 0 if run.summary["completed"] else 1


if __name__ == "__main__":
    sys.exit(main())
