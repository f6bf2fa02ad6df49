"""Redaction of personal data in captured reflow records."""

import pytest

from serving.adapter.redaction import redact, redact_value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to alice.smith+ai@example.co.uk today", "write to [EMAIL] today"),
        ("张三 zhang_san@mail.qq.com", "张三 [EMAIL]"),
        ("身份证号 11010519491231002X 请核对", "身份证号 [ID] 请核对"),
        ("id:440301199001011234.", "id:[ID]."),
        ("id 11010519491231002x", "id [ID]"),
        ("SSN 123-45-6789 on file", "SSN [ID] on file"),
        ("legacy 15 digits 110105491231002 ok", "legacy 15 digits [ID] ok"),
        ("card 6222021234567890123", "card [ID]"),
        ("call 13812345678 now", "call [PHONE] now"),
        ("call +86 138-1234-5678 now", "call [PHONE] now"),
        ("手机:138 1234 5678。", "手机:[PHONE]。"),
        ("office 010-12345678", "office [PHONE]"),
        ("office (021) 1234 5678", "office [PHONE]"),
        ("US (555) 123-4567 or 555-123-4567", "US [PHONE] or [PHONE]"),
        ("intl +44 20 7946 0958", "intl [PHONE]"),
        ("both a@b.io and 13912345678", "both [EMAIL] and [PHONE]"),
    ],
)
def test_personal_data_is_replaced(text, expected):
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "The answer is 42 and pi is 3.14159",
        "version 1.2.0 released in 2024-05-01",
        "order 12345 shipped, 3 items",
        "price 1999 yuan, 12% off",
        "a 10-digit number 1234567890 is not a phone without shape",
        "",
    ],
)
def test_ordinary_text_is_left_alone(text):
    assert redact(text) == text


def test_nested_messages_are_redacted_but_roles_kept():
    messages = [
        {"role": "system", "content": "be kind"},
        {"role": "user", "content": [{"type": "text", "text": "mail me at x@y.com"}]},
    ]
    assert redact_value(messages) == [
        {"role": "system", "content": "be kind"},
        {"role": "user", "content": [{"type": "text", "text": "mail me at [EMAIL]"}]},
    ]
