"""The large-prompt part of ``make bench-serving``: what the adapter, and its reflow capture, cost a caller whose
prompt is hundreds of KiB (RAG and agent workloads), and whether every capture arrives once, redacted.

What it starts (all on 127.0.0.1): a fake upstream (``serving.bench.fake_upstream``: TTFT 20 ms, a chunk every
5 ms, 16 tokens), a second fake upstream process used only as the fake ingest (its ``/ingest/`` routes, given the
PII markers; in a process of its own so that taking hundreds of MiB of reflow batches never stalls the event
loop that times the streams), and two adapters in front of the first, both with a system prompt and sampling
defaults (so the adapter really rewrites each body) and both shipping metric records to the fake ingest:
"capture off" (``reflow.enabled: false``) and "capture on" (``reflow`` at sample rate 1 with redaction on).

The prompts: one user message of English prose of an exact UTF-8 size (220 KiB and 1 MiB) with e-mail addresses,
phone numbers and a Chinese resident ID sprinkled in (``PII_MARKERS``), and ~200 KiB of Chinese prose with the
same kind of data, sent as UTF-8 JSON (``ensure_ascii=False``, as ``serving.bench`` sends every body).

Rounds, each target's requests interleaved with the others' (the order reverses every round):

a. 220 KiB at concurrency 16: direct, capture off, capture on (6 rounds × 64 requests per target);
b. 1 MiB at concurrency 1: direct, capture on (6 × 16);
c. 1 MiB at concurrency 16 through capture on (3 × 32), with the adapter's peak RSS over the round (``VmHWM``
   of ``/proc/<pid>/status``, reset first by writing 5 to ``/proc/<pid>/clear_refs``) and, apart, that of its
   child processes (a capture worker; ``none`` when it has none);
d. the Chinese prompt once through capture on, with the fake upstream's ``/stats`` reset around it: the body
   bytes the engine got ÷ the bytes the client sent (and the same for one 220 KiB English request);
e. then up to 60 s for the fake ingest to hold a reflow record for every request sent through capture on
   (warm-ups included), and the adapter's ``/metrics`` for dropped captures.

Output (``name=value``; the labels name the default shape):

* ``capture_added_ttft_p99_ms_220k_c16``, ``_p50_``: capture on minus capture off, TTFT percentile, round a
  (target p99 ≤ 10); ``capture_off_added_ttft_p99_ms_220k_c16``, ``_p50_``: capture off minus direct;
* ``adapter_added_ttft_p99_ms_1m_c1``, ``_p50_``: capture-on adapter minus direct, round b (target p99 ≤ 15);
* ``adapter_peak_rss_mib_1m_c16`` (target ≤ 150), ``capture_worker_peak_rss_mib_1m_c16`` (sum over the adapter's
  descendants, or ``none``), round c;
* ``upstream_bytes_ratio_zh`` (target ≤ 1.01), ``upstream_bytes_ratio_220k``, step d;
* ``capture_records_expected``, ``capture_records_received`` (distinct ids), ``capture_records_duplicated``
  (deliveries − distinct), ``capture_records_unredacted`` (ids still holding a marker), ``capture_dropped``
  (``aicp_adapter_spool_dropped_total{spool="reflow"}`` plus any metric named ``*reflow_dropped*``),
  ``capture_ingest_malformed_batches``, ``capture_wait_s`` (how long step e waited);
* the raw TTFT percentiles per target: ``{direct,capture_off,capture_on}_ttft_p{50,99}_ms_220k_c16``,
  ``{direct,capture_on}_ttft_p{50,99}_ms_1m_c1``, ``capture_on_ttft_p{50,99}_ms_1m_c16``.
"""

from __future__ import annotations

import contextlib
import glob
import json
import random
import secrets
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from benchmarks.serving_support import (
    START_TIMEOUT_S,
    Process,
    available,
    bench,
    emit,
    free_port,
    log,
    start_adapter,
)
from serving.bench.client import BenchConfig, build_payload
from serving.bench.metrics import percentile

UPSTREAM_ARGS = ["--ttft-ms", "20", "--gap-ms", "5", "--tokens", "16"]
SYSTEM_PROMPT = "You are a helpful assistant."
SAMPLING = {"temperature": 0.7, "top_p": 0.9}
# Personal data the prompts hold; a redacted capture holds none of them (serving/adapter/redaction.py's patterns).
PII_MARKERS = (
    "li.wei@example.com",
    "j.smith@mail.example.org",
    "13812345678",
    "415-555-0132",
    "11010519491231002X",
)
_PII_SENTENCES = (
    "Please forward the signed contract to li.wei@example.com before Friday.",
    "For urgent questions call 13812345678 or the front desk at 415-555-0132.",
    "The applicant's resident ID is 11010519491231002X, as recorded in the file.",
    "A copy of the minutes went to j.smith@mail.example.org as well.",
)
_PII_SENTENCES_ZH = (
    "请在周五之前把签好的合同发到li.wei@example.com，谢谢。",
    "如有急事请拨打13812345678联系值班同事。",
    "申请人的身份证号码是11010519491231002X，与档案一致。",
)
_WORD_TEXT = (
    "the report system model data team review figure quarter budget customer service network policy result "
    "request answer market product question process design study update meeting document project history "
    "support analysis account value decision security contract schedule client office region storage cluster "
    "record summary feature context memory latency capacity version release module library partner estimate "
    "shows needs keeps makes takes gives finds brings covers follows reaches describes explains confirms "
    "quickly carefully often rarely clearly early later again together nearly mostly already "
    "new large small recent final annual internal external careful simple complex common public local "
    "of in on for with about after before during under over between across through"
)
_WORDS = _WORD_TEXT.split()
_CLAUSES_ZH = (
    "今天的会议讨论了下一季度的预算安排",
    "大家一致认为应当加强数据安全管理",
    "项目组已经完成了第一阶段的测试工作",
    "客户对新版本的响应速度表示满意",
    "我们需要在月底之前提交完整的分析报告",
    "技术团队正在评估不同方案的成本和风险",
    "市场部门建议扩大在华东地区的推广力度",
    "系统的稳定性在过去一个月里明显提高",
    "财务人员将重新核对所有的报销单据",
    "新员工培训计划将于下周一正式开始",
    "这份文件记录了历次讨论的主要结论",
    "运维同事发现存储集群的容量即将不足",
)


@dataclass(frozen=True)
class LargeShape:
    """The sizes and counts of the part (the defaults are what ``make bench-serving`` runs)."""

    small_bytes: int = 220 * 1024
    large_bytes: int = 1 << 20
    zh_bytes: int = 200 * 1024
    concurrency: int = 16
    max_tokens: int = 16
    rounds_small: int = 6  # a: per target
    requests_small: int = 64
    rounds_large_c1: int = 6  # b
    requests_large_c1: int = 16
    rounds_large_c16: int = 3  # c
    requests_large_c16: int = 32
    ingest_timeout_s: float = 60.0


def english_prose(size: int, seed: int = 0, pii: int = 12) -> str:
    """English prose of exactly ``size`` UTF-8 bytes (it is ASCII) with ``pii`` sentences of personal data spread
    evenly through it (each of ``PII_MARKERS`` at least once when ``pii`` ≥ 4)."""
    rng = random.Random(seed)
    marks = [size * (k + 1) // (pii + 2) for k in range(pii)]  # the last well before the end, which is cut
    sentences: list[str] = []
    total = 0
    while total < size:
        if marks and total >= marks[0]:
            sentence = _PII_SENTENCES[(pii - len(marks)) % len(_PII_SENTENCES)]
            marks.pop(0)
        else:
            words = rng.choices(_WORDS, k=rng.randint(8, 20))
            sentence = " ".join(words).capitalize() + rng.choice((".", ".", ".", ",", ";", "?"))
        sentences.append(sentence)
        total += len(sentence) + 1
    text = " ".join(sentences)[:size]
    missing = [m for m in PII_MARKERS if m not in text] if pii >= len(_PII_SENTENCES) else []
    if missing or len(text.encode()) != size:
        raise ValueError(f"english_prose({size}): {len(text.encode())} bytes, markers missing: {missing}")
    return text


def chinese_prose(size: int, seed: int = 0, pii: int = 6) -> str:
    """Chinese prose of exactly ``size`` UTF-8 bytes (ASCII spaces pad the last partial character), with
    ``pii`` sentences of personal data (an e-mail address, a mobile number, a resident ID) spread through it."""
    rng = random.Random(seed)
    marks = [size * (k + 1) // (pii + 2) for k in range(pii)]
    parts: list[str] = []
    total = 0
    while total < size:
        if marks and total >= marks[0]:
            part = _PII_SENTENCES_ZH[(pii - len(marks)) % len(_PII_SENTENCES_ZH)]
            marks.pop(0)
        else:
            part = "，".join(rng.choices(_CLAUSES_ZH, k=rng.randint(2, 4))) + "。"
        parts.append(part)
        total += len(part.encode())
    text = "".join(parts).encode()[:size].decode(errors="ignore")
    return text + " " * (size - len(text.encode()))


# ---- /proc: peak resident memory ----------------------------------------------------------------------------


def _status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"/proc/{pid}/status has no {field}")


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid``, from ``/proc/<pid>/task/*/children`` (children of any of its threads)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        for path in glob.glob(f"/proc/{parent}/task/*/children"):
            with contextlib.suppress(OSError), open(path, encoding="ascii") as fh:
                for child in fh.read().split():
                    found.append(int(child))
                    todo.append(int(child))
    return found


def reset_peak_rss(pids: list[int]) -> bool:
    """Reset ``VmHWM`` to the current RSS (``echo 5 > /proc/<pid>/clear_refs``); False where that is refused."""
    ok = True
    for pid in pids:
        try:
            with open(f"/proc/{pid}/clear_refs", "w", encoding="ascii") as fh:
                fh.write("5")
        except OSError as exc:
            log(f"cannot reset the peak RSS of {pid} ({exc})")
            ok = False
    return ok


def peak_rss_mib(pids: list[int]) -> float:
    """The sum of the ``VmHWM`` of ``pids`` (processes gone meanwhile count 0), in MiB."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += _status_kib(pid, "VmHWM")
    return total / 1024


# ---- the fake upstream's and the adapter's figures ------------------------------------------------------------


def _get_json(url: str, method: str = "GET") -> dict:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.loads(answer.read())


def dropped_captures(metrics_text: str) -> float:
    """Captures the adapter's ``/metrics`` says it dropped: the reflow spool's dropped counter, and any metric whose
    name holds ``reflow_dropped`` (a capture worker's own), summed (``_created`` timestamps excluded)."""
    total = 0.0
    for line in metrics_text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, _, value = line.rpartition(" ")
        name = name_labels.split("{", 1)[0]
        if name.endswith("_created"):
            continue
        reflow_spool = name == "aicp_adapter_spool_dropped_total" and 'spool="reflow"' in name_labels
        if reflow_spool or "reflow_dropped" in name:
            total += float(value)
    return total


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def bench_large_prompts(workdir: Path, stack: contextlib.ExitStack, shape: LargeShape = LargeShape()) -> None:
    if not available("serving.adapter.__main__"):
        log("serving.adapter is not available (python -m serving.adapter): skipping the large-prompt measurements")
        for name in ("capture_added_ttft_p99_ms_220k_c16", "adapter_added_ttft_p99_ms_1m_c1",
                     "adapter_peak_rss_mib_1m_c16", "upstream_bytes_ratio_zh", "capture_records_received"):  # fmt: skip
            emit(name, "unavailable")
        return
    started = time.monotonic()
    upstream_port, ingest_port = free_port(), free_port()
    upstream_args = ["-m", "serving.bench.fake_upstream", "--port", str(upstream_port), *UPSTREAM_ARGS]
    upstream = Process("large_fake_upstream", upstream_args, upstream_port, workdir)
    stack.callback(upstream.stop)
    ingest_args = ["-m", "serving.bench.fake_upstream", "--port", str(ingest_port)]
    ingest_args += [arg for marker in PII_MARKERS for arg in ("--pii-marker", marker)]
    ingest = Process("large_fake_ingest", ingest_args, ingest_port, workdir)
    stack.callback(ingest.stop)
    upstream.wait_listening(START_TIMEOUT_S)
    ingest.wait_listening(START_TIMEOUT_S)
    upstream_base, ingest_base = f"http://127.0.0.1:{upstream_port}", f"http://127.0.0.1:{ingest_port}"

    api_key = f"aicp_sk_1_{secrets.token_hex(16)}"
    ingest_config = {"url": f"{ingest_base}/ingest/", "token": "bench", "interval_s": 0.2, "engine_load_interval_s": 0}
    common = {"system_prompt": SYSTEM_PROMPT, "sampling": SAMPLING, "ingest": ingest_config}
    reflow = {
        "capture_off": {"enabled": False, "spool_dir": str(workdir / "spool_off")},
        "capture_on": {"enabled": True, "sample_rate": 1.0, "redact": True, "spool_dir": str(workdir / "spool_on")},
    }
    adapters = {}
    for kind, reflow_config in reflow.items():
        adapters[kind] = start_adapter(workdir, upstream_base, api_key, name=f"adapter_{kind}", reflow=reflow_config,
                                       **common)  # fmt: skip
        stack.callback(adapters[kind].stop)
    for adapter in adapters.values():
        adapter.wait_listening(START_TIMEOUT_S)
    targets = {"direct": {"url": f"{upstream_base}/v1"}}
    for kind, adapter in adapters.items():
        targets[kind] = {"url": f"http://127.0.0.1:{adapter.port}/v1", "api_key": api_key}

    small = english_prose(shape.small_bytes, seed=1)
    large = english_prose(shape.large_bytes, seed=2)
    zh = chinese_prose(shape.zh_bytes, seed=3)
    log(f"prompts: {len(small.encode())}, {len(large.encode())} and {len(zh.encode())} (Chinese) UTF-8 bytes")
    c = shape.concurrency
    small_shape = {"concurrency": c, "num_requests": shape.requests_small, "max_tokens": shape.max_tokens,
                   "prompt_text": small}  # fmt: skip
    large_c1 = {"concurrency": 1, "num_requests": shape.requests_large_c1, "max_tokens": shape.max_tokens,
                "prompt_text": large}  # fmt: skip
    large_c16 = {"concurrency": c, "num_requests": shape.requests_large_c16, "max_tokens": shape.max_tokens,
                 "prompt_text": large}  # fmt: skip
    sent_on = 0  # requests through capture on, warm-ups included: each one's capture must reach the ingest

    def run(kind: str, warmup: int = 0, **request_shape) -> list[float]:
        nonlocal sent_on
        result = bench(**targets[kind], model="bench", warmup=warmup, **request_shape)
        if kind == "capture_on":
            sent_on += len(result.results) + warmup
        return [r.ttft for r in result.results]

    for kind in targets:  # warm-up: connections, imports, the spools' first segments
        run(kind, warmup=1, **small_shape | {"num_requests": c})
        if kind != "capture_off":
            run(kind, **large_c1 | {"num_requests": 2})
    log(f"warmed up ({time.monotonic() - started:.1f} s since the part started)")

    # a. 220 KiB at concurrency c: direct, capture off, capture on
    ttft_small: dict[str, list[float]] = {kind: [] for kind in targets}
    for i in range(shape.rounds_small):
        for kind in tuple(targets) if i % 2 == 0 else tuple(reversed(targets)):
            ttft_small[kind] += run(kind, **small_shape)
    log(f"round a done ({time.monotonic() - started:.1f} s)")

    # b. 1 MiB at concurrency 1: direct, capture on
    ttft_c1: dict[str, list[float]] = {"direct": [], "capture_on": []}
    for i in range(shape.rounds_large_c1):
        for kind in tuple(ttft_c1) if i % 2 == 0 else tuple(reversed(ttft_c1)):
            ttft_c1[kind] += run(kind, **large_c1)
    log(f"round b done ({time.monotonic() - started:.1f} s)")

    # c. 1 MiB at concurrency c through capture on, with the adapter's peak RSS (and its children's, apart)
    adapter_pid = adapters["capture_on"].proc.pid
    children = descendants(adapter_pid)
    rss_before = _status_kib(adapter_pid, "VmRSS") / 1024
    peaks_reset = reset_peak_rss([adapter_pid, *children])
    if peaks_reset and _status_kib(adapter_pid, "VmHWM") > _status_kib(adapter_pid, "VmRSS") + 1024:
        log("writing 5 to /proc/<pid>/clear_refs did not reset VmHWM here: no peak RSS for round c")
        peaks_reset = False
    ttft_c16: list[float] = []
    for _ in range(shape.rounds_large_c16):
        ttft_c16 += run("capture_on", **large_c16)
    adapter_peak = peak_rss_mib([adapter_pid])
    children = sorted(set(children) | set(descendants(adapter_pid)))  # a child started during the round counts
    children_peak = peak_rss_mib(children)
    log(f"round c done ({time.monotonic() - started:.1f} s); adapter RSS {rss_before:.0f} MiB before, peak "
        f"{adapter_peak:.0f} MiB; children {children or 'none'}")  # fmt: skip

    # d. bytes the engine gets per byte the client sent, Chinese (UTF-8) and English
    ratios = {}
    for label, text in (("zh", zh), ("220k", small)):
        _get_json(f"{upstream_base}/stats/reset", "POST")
        config = BenchConfig(url=targets["capture_on"]["url"], concurrency=1, num_requests=1, model="bench",
                             max_tokens=shape.max_tokens, prompt_text=text)  # fmt: skip
        sent_bytes = len(build_payload(config, "bench"))
        run("capture_on", concurrency=1, num_requests=1, max_tokens=shape.max_tokens, prompt_text=text)
        stats = _get_json(f"{upstream_base}/stats")
        if stats["requests"] != 1:
            raise RuntimeError(f"the fake upstream counted {stats['requests']} requests for one ({label})")
        ratios[label] = stats["body_bytes"] / sent_bytes
        log(f"{label}: the client sent {sent_bytes} bytes, the engine got {stats['body_bytes']}")

    # e. every capture at the ingest, once, redacted
    waited_from = time.monotonic()
    deadline = waited_from + shape.ingest_timeout_s
    while True:
        got = _get_json(f"{ingest_base}/ingest/stats")
        if got["reflow_records"] >= sent_on or time.monotonic() >= deadline:
            break
        time.sleep(0.25)
    waited = time.monotonic() - waited_from
    with urllib.request.urlopen(f"{targets['capture_on']['url'][:-3]}/metrics", timeout=30) as answer:
        dropped = dropped_captures(answer.read().decode())
    log(f"ingest after {waited:.1f} s: {got}; the part took {time.monotonic() - started:.0f} s")

    for p in (99, 50):
        added = percentile(ttft_small["capture_on"], p) - percentile(ttft_small["capture_off"], p)
        emit(f"capture_added_ttft_p{p}_ms_220k_c16", _ms(added))
    for p in (99, 50):
        added = percentile(ttft_small["capture_off"], p) - percentile(ttft_small["direct"], p)
        emit(f"capture_off_added_ttft_p{p}_ms_220k_c16", _ms(added))
    for p in (99, 50):
        emit(
            f"adapter_added_ttft_p{p}_ms_1m_c1",
            _ms(percentile(ttft_c1["capture_on"], p) - percentile(ttft_c1["direct"], p)),
        )
    emit("adapter_peak_rss_mib_1m_c16", round(adapter_peak, 1) if peaks_reset else "unavailable")
    if not children:
        emit("capture_worker_peak_rss_mib_1m_c16", "none")
    else:
        emit("capture_worker_peak_rss_mib_1m_c16", round(children_peak, 1) if peaks_reset else "unavailable")
    emit("upstream_bytes_ratio_zh", round(ratios["zh"], 4))
    emit("upstream_bytes_ratio_220k", round(ratios["220k"], 4))
    emit("capture_records_expected", sent_on)
    emit("capture_records_received", got["reflow_records"])
    emit("capture_records_duplicated", got["reflow_deliveries"] - got["reflow_records"])
    emit("capture_records_unredacted", got["reflow_unredacted"])
    emit("capture_dropped", int(dropped) if dropped == int(dropped) else dropped)
    emit("capture_ingest_malformed_batches", got["malformed_batches"])
    emit("capture_wait_s", round(waited, 2))
    for label, series in (("220k_c16", ttft_small), ("1m_c1", ttft_c1), ("1m_c16", {"capture_on": ttft_c16})):
        for kind, values in series.items():
            for p in (50, 99):
                emit(f"{kind}_ttft_p{p}_ms_{label}", _ms(percentile(values, p)))
