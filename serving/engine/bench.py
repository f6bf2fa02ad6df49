"""Batching benchmark: N concurrent streaming requests with batching on vs off.

``python -m serving.engine.bench --model DIR [--concurrency 8] [--max-tokens 64]`` starts one in-process engine per
mode and prints JSON. ``measure(base_url, ...)`` runs the load against any OpenAI-compatible server (for the
benchmark team). Tokens are counted from the usage the server reports, i.e. what was actually generated.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time

import aiohttp

PROMPTS = [
    "The cat",
    "Once upon a time, there was",
    "We",
    "The farmer grows wheat, corn and",
    "Rain falls on the roof",
    "The old man told a story about",
    "Birds fly south when the weather turns cold. The",
    "My friend likes to",
]


async def _one(session: aiohttp.ClientSession, url: str, model: str, prompt: str, max_tokens: int) -> dict:
    body = {
        "model": model,
        "prompt": prompt,
        "max_tokens": max_tokens,
        "temperature": 0,
        "ignore_eos": True,  # every request generates exactly max_tokens, so both modes do the same work
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    start = time.perf_counter()
    ttft = None
    usage = None
    async with session.post(f"{url}/v1/completions", json=body) as resp:
        resp.raise_for_status()
        async for raw in resp.content:
            line = raw.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                usage = chunk["usage"]
            elif ttft is None and chunk["choices"]:  # vllm bench serve's first token (serving/bench/metrics.py)
                ttft = time.perf_counter() - start
    return {"ttft": ttft, "e2e": time.perf_counter() - start, "completion_tokens": usage["completion_tokens"]}


async def measure(base_url: str, model: str, concurrency: int = 8, max_tokens: int = 64, rounds: int = 3) -> dict:
    """Fire ``concurrency`` streaming completions at once, ``rounds`` times; report the median round.

    One round on a tiny model lasts well under a second, so a single round is at the mercy of the OS scheduler.
    """
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(concurrency)]
    runs = []
    async with aiohttp.ClientSession() as session:
        await _one(session, base_url, model, "Warm up", 4)
        for _ in range(rounds):
            start = time.perf_counter()
            results = await asyncio.gather(*[_one(session, base_url, model, p, max_tokens) for p in prompts])
            wall = time.perf_counter() - start
            tokens = sum(r["completion_tokens"] for r in results)
            runs.append(
                {
                    "requests": concurrency,
                    "output_tokens": tokens,
                    "wall_s": round(wall, 3),
                    "tokens_per_s": round(tokens / wall, 1),
                    "mean_ttft_s": round(sum(r["ttft"] for r in results) / len(results), 4),
                    "mean_e2e_s": round(sum(r["e2e"] for r in results) / len(results), 4),
                }
            )
    runs.sort(key=lambda r: r["tokens_per_s"])
    return {**runs[len(runs) // 2], "rounds_tokens_per_s": [r["tokens_per_s"] for r in runs]}


def compare_batching(
    model_dir: str,
    concurrency: int = 8,
    max_tokens: int = 64,
    device: str = "cpu",
    dtype: str = "float32",
    rounds: int = 3,
) -> dict:
    """Measure the same load against an engine with batching off, then on; report both and the speedup."""
    import torch

    from serving.engine.core import Engine
    from serving.engine.server import BackgroundServer

    report = {"concurrency": concurrency, "max_tokens": max_tokens, "device": device, "dtype": dtype}
    report["torch_threads"] = torch.get_num_threads()
    for mode in ("off", "on"):
        engine = Engine(
            model_dir, batching=mode == "on", max_batch_size=max(16, concurrency), device=device, dtype=dtype
        )
        server = BackgroundServer(engine, served_model_name="bench").start()
        try:
            report[f"batching_{mode}"] = asyncio.run(measure(server.url, "bench", concurrency, max_tokens, rounds))
        finally:
            server.stop()
    report["speedup"] = round(report["batching_on"]["tokens_per_s"] / report["batching_off"]["tokens_per_s"], 2)
    return report


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parser = argparse.ArgumentParser(description="AICP engine batching benchmark")
    parser.add_argument("--model", required=True)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--rounds", type=int, default=3, help="repeat the load; the median round is reported")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: the engine's; 0: torch's default)"
    )
    args = parser.parse_args(argv)
    from serving.engine.threads import default_threads

    threads = default_threads() if args.threads is None else args.threads
    if threads > 0:
        import torch

        torch.set_num_threads(threads)
    report = compare_batching(args.model, args.concurrency, args.max_tokens, args.device, args.dtype, args.rounds)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
