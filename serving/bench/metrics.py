"""The metric math of the serving benchmark: pure functions over per-request measurements.

The definitions are SPEC's "Performance metrics" and those of ``vllm bench serve``, so that a number printed
here can be compared with one printed there:

* **the token events**: ``vllm bench serve`` (``async_request_openai_chat_completions`` and
  ``async_request_openai_completions`` in ``vllm/benchmarks/lib/endpoint_request_func.py``) times every SSE
  ``data:`` event whose ``choices`` list is non-empty, whatever it holds: a role-only chat delta, a chunk with
  ``"content": ""`` or ``"text": ""`` (a special or held-back token), the chunk that carries the
  ``finish_reason``. The usage chunk (``choices: []``) and ``[DONE]`` are not token events. So do we;
* **TTFT**: request sent → the first token event. Against vLLM (and our engine, which shapes its streams the
  same way) that is the chat role chunk, which goes out together with the first token after prefill;
* **ITL**: every gap between consecutive token events, pooled over all requests. For chat the first gap is
  role chunk → first token's chunk, about zero: vLLM's client records it too;
* **E2E**: request sent → the last token event (the usage chunk after it does not move the end; older vLLM
  releases let it move the end of a chat request);
* **TPOT** (per request): (E2E − TTFT) / (output tokens − 1), only for requests with more than one output
  token (a single token has no "after the first");
* a stream without any token event fails, as in vLLM (there is no first token to time);
* output tokens come from the server's final usage chunk, never from ``max_tokens``;
* one difference in method, not in definition: vLLM reads the clock once per event as it parses it; we read it
  once per network read and give it to every event of that read (they arrived together), which costs less
  on a busy machine and differs by the parsing time only;
* throughputs divide totals by the benchmark's wall-clock duration; **goodput** counts only the requests
  that meet every given SLO (TTFT, TPOT, E2E in milliseconds).

Percentiles interpolate linearly between closest ranks, as ``numpy.percentile`` does by default; numpy is not
needed (the data plane keeps its dependencies small).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

DEFAULT_PERCENTILES = (50.0, 90.0, 99.0)
SLO_NAMES = ("ttft", "tpot", "e2e")


@dataclass
class RequestResult:
    """What one request measured. Times are seconds, relative to when the request was sent."""

    success: bool = False
    error: str = ""
    ttft: float = 0.0  # first token event (an SSE event with non-empty choices)
    latency: float = 0.0  # E2E: last token event
    itl: list[float] = field(default_factory=list)  # gaps between consecutive token events
    prompt_tokens: int = 0  # from usage
    output_tokens: int = 0  # from usage
    choice_chunks: int = 0  # token events: SSE events with a non-empty choices list
    events: int = 0  # every SSE ``data:`` event received, [DONE] included


def percentile(values: Sequence[float], p: float) -> float:
    """``numpy.percentile(values, p)`` with its default ("linear") method.

    The rank is ``(n - 1) * p / 100``; between the two samples around it the value is interpolated linearly.
    Empty input gives NaN, as a metric with no samples has no value (printed as such, never as 0).
    """
    if not 0 <= p <= 100:
        raise ValueError(f"percentile must be within [0, 100], got {p}")
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values) if values else math.nan


def std(values: Sequence[float]) -> float:
    """Population standard deviation (``numpy.std``'s default, as vllm reports it)."""
    if not values:
        return math.nan
    m = mean(values)
    return math.sqrt(math.fsum((v - m) ** 2 for v in values) / len(values))


def tpot(result: RequestResult) -> float | None:
    """Time per output token after the first; None when the request produced at most one token."""
    if result.output_tokens <= 1:
        return None
    return (result.latency - result.ttft) / (result.output_tokens - 1)


def parse_goodput(specs: Iterable[str]) -> dict[str, float]:
    """``["ttft:2000", "tpot:100"]`` → ``{"ttft": 2000.0, "tpot": 100.0}`` (milliseconds).

    Unknown names and non-positive values are errors: a typo must not silently count every request as good.
    """
    slos: dict[str, float] = {}
    for spec in specs:
        name, sep, value = spec.partition(":")
        name = name.strip().lower()
        if not sep or name not in SLO_NAMES:
            raise ValueError(f"goodput SLO must be one of {', '.join(SLO_NAMES)} as NAME:MS, got {spec!r}")
        try:
            ms = float(value)
        except ValueError:
            raise ValueError(f"goodput SLO {spec!r}: {value!r} is not a number of milliseconds") from None
        if not ms > 0:
            raise ValueError(f"goodput SLO {spec!r} must be positive")
        slos[name] = ms
    return slos


def meets_slos(result: RequestResult, slos: Mapping[str, float]) -> bool:
    """Whether a successful request meets every SLO (milliseconds).

    A request with a single output token has no TPOT; it counts as TPOT 0, as in vllm (nothing was slow).
    """
    if not result.success:
        return False
    observed = {"ttft": result.ttft, "tpot": tpot(result) or 0.0, "e2e": result.latency}
    return all(observed[name] * 1000 <= limit for name, limit in slos.items())


def _stats(prefix: str, seconds: Sequence[float], percentiles: Sequence[float]) -> dict[str, float]:
    """mean/median/std/pXX of a metric, in milliseconds, under vllm's key names (``mean_ttft_ms``...)."""
    values_ms = [s * 1000 for s in seconds]
    stats = {
        f"mean_{prefix}_ms": mean(values_ms),
        f"median_{prefix}_ms": percentile(values_ms, 50),
        f"std_{prefix}_ms": std(values_ms),
    }
    for p in percentiles:
        stats[f"p{p:g}_{prefix}_ms"] = percentile(values_ms, p)
    return stats


def summarize(
    results: Sequence[RequestResult],
    duration: float,
    *,
    slos: Mapping[str, float] | None = None,
    percentiles: Sequence[float] = DEFAULT_PERCENTILES,
) -> dict[str, float | int]:
    """The benchmark's figures from its requests and its wall-clock ``duration`` (seconds).

    Only successful requests enter the latency statistics and the token totals; failures are counted.
    """
    if duration <= 0:
        raise ValueError("benchmark duration must be positive")
    done = [r for r in results if r.success]
    total_input = sum(r.prompt_tokens for r in done)
    total_output = sum(r.output_tokens for r in done)
    summary: dict[str, float | int] = {
        "completed": len(done),
        "failed": len(results) - len(done),
        "duration": duration,
        "total_input_tokens": total_input,
        "total_output_tokens": total_output,
        "total_choice_chunks": sum(r.choice_chunks for r in done),
        "total_events": sum(r.events for r in results),
        "request_throughput": len(done) / duration,
        "output_throughput": total_output / duration,
        "total_token_throughput": (total_input + total_output) / duration,
    }
    if slos:
        summary["request_goodput"] = sum(meets_slos(r, slos) for r in done) / duration
    tpots = [t for t in (tpot(r) for r in done) if t is not None]
    summary |= _stats("ttft", [r.ttft for r in done], percentiles)
    summary |= _stats("tpot", tpots, percentiles)
    summary |= _stats("itl", [gap for r in done for gap in r.itl], percentiles)
    summary |= _stats("e2el", [r.latency for r in done], percentiles)
    return summary


_SECTIONS = (("ttft", "Time to First Token", "TTFT"), ("tpot", "Time per Output Token (excl. 1st token)", "TPOT"))
_SECTIONS += (("itl", "Inter-token Latency", "ITL"), ("e2el", "End-to-end Latency", "E2EL"))


def format_table(summary: Mapping[str, float | int], *, concurrency: int | None = None) -> str:
    """vllm's result table (the same labels, so the two read side by side)."""
    rows: list[str] = ["{s:{c}^50}".format(s=" Serving Benchmark Result ", c="=")]

    def row(label: str, value, fmt: str = ".2f") -> None:
        text = value if isinstance(value, int) else format(value, fmt)
        rows.append(f"{label:<40} {text:<10}")

    row("Successful requests:", int(summary["completed"]))
    row("Failed requests:", int(summary["failed"]))
    if concurrency is not None:
        row("Maximum request concurrency:", concurrency)
    row("Benchmark duration (s):", summary["duration"])
    row("Total input tokens:", int(summary["total_input_tokens"]))
    row("Total generated tokens:", int(summary["total_output_tokens"]))
    row("Request throughput (req/s):", summary["request_throughput"])
    if "request_goodput" in summary:
        row("Request goodput (req/s):", summary["request_goodput"])
    row("Output token throughput (tok/s):", summary["output_throughput"])
    row("Total token throughput (tok/s):", summary["total_token_throughput"])
    for key, title, short in _SECTIONS:
        rows.append("{s:{c}^50}".format(s=title, c="-"))
        row(f"Mean {short} (ms):", summary[f"mean_{key}_ms"])
        row(f"Median {short} (ms):", summary[f"median_{key}_ms"])
        names = (k for k in summary if k.startswith("p") and k.endswith(f"_{key}_ms") and _pkey(k) != 50)
        for name in sorted(names, key=_pkey):  # P50 is the median, already shown
            row(f"P{name[1:].split('_')[0]} {short} (ms):", summary[name])
    rows.append("=" * 50)
    return "\n".join(rows)


def _pkey(name: str) -> float:
    return float(name[1:].split("_")[0])
