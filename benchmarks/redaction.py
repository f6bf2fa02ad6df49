"""Cost of reflow redaction (``serving.adapter.redaction.redact``) per MiB of text.

``python -m benchmarks.redaction`` builds about 1 MiB (UTF-8) each of Chinese prose, English prose and
digit-heavy text (log lines with dates, times, prices, versions, order numbers), each with a few e-mails,
phones and IDs sprinkled in, times ``redact`` on each (best of 5) and prints ``name=value`` lines:

- ``redaction_ms_per_mib_zh`` / ``_en`` / ``_digits``: milliseconds per MiB of UTF-8 text;
- ``reference_str_lower_ms_per_mib_zh``: ``str.lower()`` on the same Chinese text, a floor measured in the
  same run (one pass over the text in C).

``build_texts`` and ``ms_per_mib`` can time another implementation of ``redact`` (e.g. an older one).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from serving.adapter.redaction import redact

MIB = 1 << 20

ZH_SENTENCES = [
    "今天的会议讨论了下一季度的产品路线图，大家一致认为应当优先提升推理服务的稳定性。",
    "模型在长文本上的表现仍然不够理想，我们计划在数据清洗阶段增加更多的中文语料。",
    "请在周五之前提交测试报告，并说明每一项指标的计算方法和数据来源。",
    "用户反馈说界面的响应速度比上个版本快了不少，但偶尔还会出现加载失败的情况。",
    "这家餐厅的招牌菜是红烧肉，价格是¥88.00，周末通常需要提前预订。",
    "版本1.2.3修复了若干已知问题，升级时请先备份配置文件。",
    "会议定于2026-12-03下午3点在三楼大会议室举行，预计持续两个小时。",
    "春天来了，公园里的花都开了，许多市民带着孩子出来散步、放风筝。",
    "（注：以上数据仅供参考，最终结果以正式发布的报告为准。）",
    "他说：“我们需要更多的时间来评估这个方案的可行性。”",
]
ZH_PERSONAL = [
    "如有疑问请联系张三，邮箱zhang.san@example.com，手机１３８１２３４５６７８。",
    "客户身份证号11010519491231002X，联系电话（010）12345678。",
    "李四的电话+86 139 8765 4321，银行卡6222021234567890123。",
]
EN_SENTENCES = [
    "The meeting covered the roadmap for the next quarter, and everyone agreed that stability comes first.",
    "Long-context quality is still not good enough, so we plan to add more data at the cleaning stage.",
    "Please send the test report by Friday and explain how each metric was computed (and from what data).",
    "Users say the interface feels much faster than the previous release, though loading sometimes fails.",
    "The restaurant's signature dish costs $24.50, and tables should be booked ahead on weekends.",
    "Version 1.2.3 fixes several known issues; back up your configuration before upgrading.",
    "The review is scheduled for 2026-12-03 at 3 pm in the large meeting room on the third floor.",
    "Spring has come, the flowers in the park are out, and families are walking and flying kites.",
]
EN_PERSONAL = [
    "Questions? Write to alice.smith+ai@example.co.uk or call (555) 123-4567.",
    "SSN 123-45-6789 is on file; the office line is +44 20 7946 0958.",
    "Card 4111111111111111 was charged; the customer's mobile is 555.123.4567.",
]
DIGIT_LINES = [
    "2026-12-03 10:15:32.481 order={order} qty={qty} price=¥1,299.00 total=¥{total}.00 build=1.2.{qty}",
    "{order} {qty} {total} 3.14159 2.71828 0.57721 1.41421 {order}-{qty} 10:{qty:02d}:59",
    "lat=31.2304 lon=121.4737 alt={qty}.5 t=1733220932 seq={order} rssi=-{qty} v10.0.{total}",
    "| {order} | 2026.12.03 | {qty} | ${total}.99 | 12% | 0x{order:x} | 192.168.{qty}.{qty} |",
]
DIGIT_PERSONAL = [
    "contact 13812345678 / 010-12345678 / id 440301199001011234",
    "user 110105194912310021 mail ops@example.org phone +1 (555) 987-6543",
]


def _prose(sentences: list[str], personal: list[str], joiner: str, rng: random.Random) -> str:
    parts, size = [], 0
    while size < MIB:
        sentence = rng.choice(personal) if rng.random() < 0.002 else rng.choice(sentences)
        parts.append(sentence)
        size += len(sentence.encode()) + len(joiner)
    return joiner.join(parts)


def _digits(rng: random.Random) -> str:
    lines, size = [], 0
    while size < MIB:
        if rng.random() < 0.005:
            line = rng.choice(DIGIT_PERSONAL)
        else:
            values = {"order": rng.randrange(10_000, 9_999_999), "qty": rng.randrange(1, 99)}
            line = rng.choice(DIGIT_LINES).format(total=rng.randrange(100, 99_999), **values)
        lines.append(line)
        size += len(line.encode()) + 1
    return "\n".join(lines)


def build_texts(seed: int = 7) -> dict[str, str]:
    """About 1 MiB each of Chinese prose, English prose and digit-heavy text, with some personal data."""
    rng = random.Random(seed)
    return {
        "zh": _prose(ZH_SENTENCES, ZH_PERSONAL, "", rng),
        "en": _prose(EN_SENTENCES, EN_PERSONAL, " ", rng),
        "digits": _digits(rng),
    }


def ms_per_mib(function: Callable[[str], object], text: str, repeat: int = 5) -> float:
    """Best of ``repeat`` timings of ``function(text)``, in milliseconds per MiB of UTF-8 text."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        function(text)
        best = min(best, time.perf_counter() - started)
    return best * 1000 / (len(text.encode()) / MIB)


def emit(name: str, value) -> None:
    print(f"{name}={value}", flush=True)


def main() -> None:
    texts = build_texts()
    for name, text in texts.items():
        emit(f"redaction_ms_per_mib_{name}", f"{ms_per_mib(redact, text):.2f}")
    emit("reference_str_lower_ms_per_mib_zh", f"{ms_per_mib(str.lower, texts['zh']):.2f}")


if __name__ == "__main__":
    main()
