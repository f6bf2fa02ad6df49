"""The synthetic traffic of ``make bench-ingest`` (``benchmarks/ingest.py``): requests as an adapter measures them,
the metric and reflow records it ships, and a month of them held as the product's roll-ups.

Requests are drawn with numpy: lognormal TTFT, TPOT, output and input lengths, a few errors and a few
non-streamed requests. Histograms are binned as ``telemetry/sketch.py`` bins them, vectorised and checked
against ``sketch.bin_of``; ``good`` follows ``telemetry.records.meets_targets``.
"""

from __future__ import annotations

import math
import random
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from benchmarks.api import BenchError

# The month held as roll-ups.
MONTH_HOURS = 30 * 24
MONTH_REQUESTS = 10_000_000

# The synthetic traffic (both parts): lognormal latencies, output lengths varied, a few errors.
TTFT_MEDIAN_MS, TTFT_SIGMA = 300.0, 0.5
TPOT_MEDIAN_MS, TPOT_SIGMA = 30.0, 0.25
ITL_SIGMA = 0.05  # a request's chunk gaps: lognormal around its own TPOT
OUTPUT_MEDIAN, OUTPUT_SIGMA, OUTPUT_MAX = 150.0, 0.8, 2048
INPUT_MEDIAN, INPUT_SIGMA, INPUT_MAX = 400.0, 0.9, 8000
ERROR_RATE = 0.02
ERROR_STATUSES = (429, 500, 503)
UNARY_RATE = 0.05  # non-streamed requests: no TTFT, TPOT nor ITL
API_KEY_IDS = (101, 102, 103)  # the keys calling the task (usage rows are kept per key)

NBINS = 2400  # histogram arrays cover bins MIN_BIN .. MIN_BIN + NBINS - 1 (values up to ~1e11 ms)


def log(message: str) -> None:
    print(f"[bench-ingest] {message}", file=sys.stderr, flush=True)


def iso(moment: datetime) -> str:
    """As the adapter writes times: ISO 8601 UTC, milliseconds, ``Z``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- the product's histogram bins, vectorised ---------------------------------------------------------------


def _sketch():
    from telemetry import sketch

    return sketch


def bins_of(values):
    """``telemetry.sketch.bin_of`` over a numpy array: ``ceil(log(max(v, MIN_MS)) / log(GAMMA))``."""
    import numpy as np

    sketch = _sketch()
    return np.ceil(np.log(np.maximum(values, sketch.MIN_MS)) / math.log(sketch.GAMMA)).astype(np.int64)


def min_bin() -> int:
    sketch = _sketch()
    return sketch.bin_of(sketch.MIN_MS)


def check_bins(rng, *samples) -> int:
    """The vectorised bins equal ``sketch.bin_of`` on a sample of each array (and on values below MIN_MS and on
    exact powers of GAMMA, the bins' edges); returns how many values were compared."""
    import numpy as np

    sketch = _sketch()
    edges = np.array([sketch.GAMMA**i for i in range(-20, 700, 7)])
    values = np.concatenate([*(rng.choice(s, size=min(len(s), 20_000), replace=False) for s in samples), edges,
                             np.array([0.0, 1e-9, sketch.MIN_MS, 0.5, 1.0])])  # fmt: skip
    vectorised = bins_of(values).tolist()
    scalar = [sketch.bin_of(float(v)) for v in values]
    mismatches = [(float(v), a, b) for v, a, b in zip(values, vectorised, scalar, strict=True) if a != b]
    if mismatches:
        raise BenchError(f"vectorised bins differ from telemetry.sketch.bin_of: {mismatches[:5]}")
    return len(values)


def hist_dict(counts, offset: int) -> dict[str, int]:
    """A dense count array (index 0 = bin ``offset``) as the product stores it: ``{"<bin>": count}``."""
    import numpy as np

    nonzero = np.flatnonzero(counts)
    return {str(i + offset): c for i, c in zip((nonzero).tolist(), counts[nonzero].tolist(), strict=True)}


# --- one batch of requests, as the adapter measures them -----------------------------------------------------


@dataclass
class Requests:
    """``n`` synthetic requests (numpy arrays). Errors have no latency but E2E and no tokens; non-streamed
    requests have no TTFT, TPOT nor ITL; a request with one output token has no TPOT nor ITL."""

    status: object
    stream: object
    ttft: object
    tpot: object
    e2e: object
    output_tokens: object
    input_tokens: object

    @property
    def ok(self):
        return self.status < 400

    @property
    def has_ttft(self):
        return self.ok & self.stream

    @property
    def has_tpot(self):
        return self.has_ttft & (self.output_tokens >= 2)

    def good(self, ttft_target_ms: float, tpot_target_ms: float):
        """``telemetry.records.meets_targets``, vectorised: a request is good when it succeeded and, streamed,
        TTFT <= the TTFT target and (no TPOT, or TPOT <= the TPOT target); non-streamed (no TTFT), when
        E2E <= TTFT target + TPOT target x max(0, output tokens - 1)."""
        import numpy as np

        streamed = (self.ttft <= ttft_target_ms) & (~self.has_tpot | (self.tpot <= tpot_target_ms))
        unary = self.e2e <= ttft_target_ms + tpot_target_ms * np.maximum(0, self.output_tokens - 1)
        return self.ok & np.where(self.stream, streamed, unary)


def synthesise(rng, n: int, load: float = 1.0) -> Requests:
    """``load`` scales the latencies (a busy hour is slower)."""
    import numpy as np

    status = np.where(rng.random(n) < ERROR_RATE, rng.choice(ERROR_STATUSES, size=n), 200)
    ok = status < 400
    stream = rng.random(n) >= UNARY_RATE
    output = np.clip(np.rint(rng.lognormal(math.log(OUTPUT_MEDIAN), OUTPUT_SIGMA, n)), 1, OUTPUT_MAX).astype(np.int64)
    inputs = np.clip(np.rint(rng.lognormal(math.log(INPUT_MEDIAN), INPUT_SIGMA, n)), 1, INPUT_MAX).astype(np.int64)
    ttft = rng.lognormal(math.log(TTFT_MEDIAN_MS * load), TTFT_SIGMA, n)
    tpot = rng.lognormal(math.log(TPOT_MEDIAN_MS * load), TPOT_SIGMA, n)
    e2e = ttft + tpot * (output - 1)
    e2e = np.where(ok, e2e, rng.lognormal(math.log(20.0), 1.0, n))  # an error answers fast, with no tokens out
    return Requests(
        status=status,
        stream=stream,
        ttft=ttft,
        tpot=tpot,
        e2e=e2e,
        output_tokens=np.where(ok, output, 0),
        input_tokens=np.where(ok, inputs, 0),
    )


# --- metric and reflow records, shaped as the adapter ships them ---------------------------------------------


def metric_records(rng, task, n: int, now: datetime) -> list[dict]:
    """``n`` metric records as ``serving/adapter/metrics.py`` writes them, started within the last hour. Each
    streamed request's chunk gaps (output tokens − 1 of them) are drawn around its TPOT; ``itl_hist`` bins them
    with the product's formula, ``itl_p50_ms``/``itl_max_ms`` summarise them as the adapter does."""
    import numpy as np

    r = synthesise(rng, n)
    with_gaps = r.has_tpot
    counts = np.where(with_gaps, r.output_tokens - 1, 0)
    owner = np.repeat(np.arange(n), counts)
    gaps = np.repeat(r.tpot, counts) * rng.lognormal(0.0, ITL_SIGMA, int(counts.sum()))
    order = np.lexsort((gaps, owner))
    gaps = gaps[order]  # sorted by request, then by gap
    gap_bins = bins_of(gaps)
    ends = np.cumsum(counts)
    starts = ends - counts
    # run lengths of equal (request, bin): each request's histogram
    change = np.flatnonzero(np.diff(owner * NBINS + (gap_bins - min_bin()), prepend=-1))
    run_owner, run_bin = owner[change].tolist(), gap_bins[change].tolist()
    run_count = np.diff(np.append(change, len(owner))).tolist()
    hists: list[dict | None] = [None] * n
    for who, b, c in zip(run_owner, run_bin, run_count, strict=True):
        if hists[who] is None:
            hists[who] = {}
        hists[who][str(b)] = c
    p50 = gaps[np.where(with_gaps, starts + counts // 2, 0)] if len(gaps) else np.zeros(n)
    top = gaps[np.where(with_gaps, ends - 1, 0)] if len(gaps) else np.zeros(n)
    ago = rng.uniform(1.0, 3600.0, n) + r.e2e / 1000  # finished within the last hour
    records = []
    for i in range(n):
        streamed = bool(r.has_ttft[i])
        gapped = bool(with_gaps[i])
        out = int(r.output_tokens[i])
        records.append({
            "id": uuid.uuid4().hex,
            "task_id": task.pk,
            "tenant_id": task.tenant_id,
            "api_key_id": API_KEY_IDS[i % len(API_KEY_IDS)],
            "started_at": iso(now - timedelta(seconds=float(ago[i]))),
            "ttft_ms": round(float(r.ttft[i]), 3) if streamed else None,
            "tpot_ms": round(float(r.tpot[i]), 3) if gapped else None,
            "e2e_ms": round(float(r.e2e[i]), 3),
            "chunks": out if streamed else 0,
            "input_tokens": int(r.input_tokens[i]),
            "output_tokens": out,
            "status": int(r.status[i]),
            "stream": bool(r.stream[i]),
            "itl_p50_ms": round(float(p50[i]), 3) if gapped else None,
            "itl_max_ms": round(float(top[i]), 3) if gapped else None,
            "itl_hist": hists[i],
        })  # fmt: skip
    return records


_VOCABULARY = (
    "the a of to and in is for on with that as by this be are from at or it an can which your you we our will "
    "model request service data cluster latency token deploy tenant pool gateway image version config secret "
    "please explain how why when what where summary details example steps first then finally note however "
    "python function error value list table query index cache memory process thread network storage backup "
    "customer order invoice payment account report quarter revenue growth forecast budget team project plan "
    "write translate review improve describe compare suggest check fix update create delete rename move copy"
)
WORDS = _VOCABULARY.split()
SYSTEM_PROMPTS = (
    "You are a helpful assistant for the support team. Answer briefly and cite the relevant document.",
    "You are a careful translator. Keep the tone and the formatting of the original text.",
    "You are a code reviewer. Point out bugs first, then style, and suggest a corrected version.",
)


def prose(words: int) -> str:
    text = " ".join(random.choices(WORDS, k=words))
    return text[0].upper() + text[1:] + "."


def reflow_records(rng, task, n: int, now: datetime) -> list[dict]:
    """``n`` captured pairs as ``serving/adapter/reflow.py`` writes them: a chat of a system prompt and one or
    two user turns of a few hundred characters, the answer of a few hundred more."""
    r = synthesise(rng, n)
    ago = rng.uniform(1.0, 3600.0, n)
    records = []
    for i in range(n):
        started = now - timedelta(seconds=float(ago[i]) + float(r.e2e[i]) / 1000)
        messages = [{"role": "system", "content": SYSTEM_PROMPTS[i % len(SYSTEM_PROMPTS)]}]
        if i % 3 == 0:
            messages += [{"role": "user", "content": prose(30)}, {"role": "assistant", "content": prose(40)}]
        messages.append({"role": "user", "content": prose(random.randint(30, 70))})
        ok, streamed = bool(r.ok[i]), bool(r.has_ttft[i])
        records.append({
            "id": uuid.uuid4().hex,
            "task_id": task.pk,
            "tenant_id": task.tenant_id,
            "api_key_id": API_KEY_IDS[i % len(API_KEY_IDS)],
            "endpoint": "chat",
            "messages": messages,
            "parameters": {"temperature": 0.7, "top_p": 0.95, "max_tokens": 1024},
            "output": prose(random.randint(40, 90)) if ok else "",
            "finish_reason": ("stop" if i % 10 else "length") if ok else None,
            "input_tokens": int(r.input_tokens[i]),
            "output_tokens": int(r.output_tokens[i]),
            "ttft_ms": round(float(r.ttft[i]), 3) if streamed else None,
            "tpot_ms": round(float(r.tpot[i]), 3) if bool(r.has_tpot[i]) else None,
            "status": int(r.status[i]),
            "runtime_image_version": "1.0.0",
            "started_at": iso(started),
            "finished_at": iso(started + timedelta(milliseconds=float(r.e2e[i]))),
        })  # fmt: skip
    return records


# --- a month held as roll-ups ----------------------------------------------------------------------------------


@dataclass
class Month:
    hour_starts: list[datetime]
    requests: list[int]
    errors: list[int]
    good: list[int]
    rows: int


def month_of_rollups(task, rng, end: datetime) -> Month:
    """``MONTH_REQUESTS`` requests over the ``MONTH_HOURS`` hours before ``end``, stored as the product stores
    them: an hour row per hour and a day row per (UTC) day that is the sum of its hours.

    ITL: each successful streamed request's ``output tokens − 1`` chunk gaps are lognormal around its own TPOT
    (``ITL_SIGMA``). Instead of drawing ~3 million gaps per hour one by one, the requests are grouped by their
    TPOT to a quarter of a bin, and each group's gaps are drawn at once from the multinomial of the bins that
    lognormal falls in: the same hour histogram in distribution, its count exactly the sum of the gaps.
    """
    import numpy as np

    from telemetry.choices import Resolution
    from telemetry.models import LatencyRollup
    from telemetry.periods import day_of

    sketch = _sketch()
    offset = min_bin()
    log_gamma = math.log(sketch.GAMMA)
    spread = ITL_SIGMA / log_gamma  # the gaps' standard deviation, in bins
    reach = math.ceil(8 * spread) + 1
    steps = np.arange(-reach, reach + 1)
    phases = 4
    # P(bin = k + d) for gaps centred (in log/bins) at k - 1 + (phase + 0.5) / phases
    erf = np.vectorize(math.erf)
    pmfs = []
    for phase in range(phases):
        centre = -1 + (phase + 0.5) / phases
        upper = 0.5 * (1 + erf((steps - centre) / spread / math.sqrt(2)))
        lower = 0.5 * (1 + erf((steps - 1 - centre) / spread / math.sqrt(2)))
        pmf = np.clip(upper - lower, 0, None)
        pmfs.append(pmf / pmf.sum())

    per_hour = np.full(MONTH_HOURS, MONTH_REQUESTS // MONTH_HOURS)
    per_hour[: MONTH_REQUESTS % MONTH_HOURS] += 1
    first = end - timedelta(hours=MONTH_HOURS)
    hour_starts = [first + timedelta(hours=h) for h in range(MONTH_HOURS)]
    ttft_target, tpot_target = task.ttft_slo_ms, task.tpot_slo_ms

    rows, days = [], {}
    totals = Month(hour_starts=hour_starts, requests=[], errors=[], good=[], rows=0)
    started = time.perf_counter()
    synth_s = 0.0
    checked = 0
    for h, start in enumerate(hour_starts):
        t0 = time.perf_counter()
        load = 1 + 0.2 * math.sin(2 * math.pi * (start.hour - 9) / 24)  # busier (slower) in the afternoon
        r = synthesise(rng, int(per_hour[h]), load)
        if h == 0:
            checked = check_bins(rng, r.ttft, r.tpot, r.e2e)
        hists = {}
        for name, values in (("ttft", r.ttft[r.has_ttft]), ("tpot", r.tpot[r.has_tpot]), ("e2e", r.e2e[r.ok])):
            hists[name] = np.bincount(bins_of(values) - offset, minlength=NBINS)
        gapped = r.has_tpot
        scaled = np.log(r.tpot[gapped]) / log_gamma  # the request's TPOT, in (fractional) bins
        quarter = np.floor(scaled * phases).astype(np.int64)
        gaps = (r.output_tokens[gapped] - 1).astype(np.int64)
        itl = np.zeros(NBINS, dtype=np.int64)
        keys, inverse = np.unique(quarter, return_inverse=True)
        group_gaps = np.bincount(inverse, weights=gaps).astype(np.int64)
        for phase in range(phases):
            mine = np.flatnonzero(np.mod(keys, phases) == phase)
            if not len(mine):
                continue
            draws = rng.multinomial(group_gaps[mine], pmfs[phase])  # (groups, bins)
            base = np.floor_divide(keys[mine], phases) + 1  # the bin the gaps are centred in
            where = base[:, None] + steps[None, :] - offset
            itl += np.bincount(where.ravel(), weights=draws.ravel(), minlength=NBINS).astype(np.int64)
        if itl.sum() != gaps.sum():
            raise BenchError(f"hour {h}: ITL histogram holds {itl.sum()} gaps, the requests {gaps.sum()}")
        if any(len(a) != NBINS for a in (*hists.values(), itl)):
            raise BenchError(f"hour {h}: a value fell outside the {NBINS} bins the arrays cover")
        counts = {
            "requests": int(per_hour[h]),
            "errors": int((~r.ok).sum()),
            "good": int(r.good(ttft_target, tpot_target).sum()),
            "input_tokens": int(r.input_tokens.sum()),
            "output_tokens": int(r.output_tokens.sum()),
        }
        totals.requests.append(counts["requests"])
        totals.errors.append(counts["errors"])
        totals.good.append(counts["good"])
        arrays = {"ttft_hist": hists["ttft"], "tpot_hist": hists["tpot"], "itl_hist": itl, "e2e_hist": hists["e2e"]}
        synth_s += time.perf_counter() - t0
        rows.append(LatencyRollup(tenant_id=task.tenant_id, task_id=task.pk, resolution=Resolution.HOUR, start=start,
                                  **counts, **{k: hist_dict(v, offset) for k, v in arrays.items()}))  # fmt: skip
        day = days.setdefault(day_of(start), {"counts": dict.fromkeys(counts, 0), "arrays": {}})
        for name, value in counts.items():
            day["counts"][name] += value
        for name, array in arrays.items():
            day["arrays"][name] = day["arrays"][name] + array if name in day["arrays"] else array.copy()
    for start, day in sorted(days.items()):
        hists = {k: hist_dict(v, offset) for k, v in day["arrays"].items()}
        rows.append(LatencyRollup(tenant_id=task.tenant_id, task_id=task.pk, resolution=Resolution.DAY, start=start,
                                  **day["counts"], **hists))  # fmt: skip
    built = time.perf_counter() - started
    t0 = time.perf_counter()
    LatencyRollup.objects.bulk_create(rows, batch_size=100)
    log(f"month: {sum(totals.requests)} requests over {MONTH_HOURS} hours from {iso(first)} to {iso(end)}; "
        f"{checked} vectorised bins checked against sketch.bin_of; synthesis {synth_s:.1f}s, rows built "
        f"{built:.1f}s, {len(rows)} rows inserted in {time.perf_counter() - t0:.1f}s")  # fmt: skip
    totals.rows = len(rows)
    return totals
