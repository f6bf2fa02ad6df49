"""Redaction of personal data in captured reflow records, on ASCII, Chinese and mixed text."""

import pytest

from serving.adapter.redaction import is_resident_id, redact, redact_value

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def check_char(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character of a resident ID's first 17 digits, computed here independently."""
    return "10X98765432"[sum(int(d) * w for d, w in zip(first17, WEIGHTS, strict=True)) % 11]


# Resident IDs used below; test_resident_id_examples_are_what_they_claim checks them with check_char.
VALID_IDS = ["11010519491231002X", "32010620001231001X", "440301199001011234", "110105194912310038"]
WRONG_X_IDS = ["11010519491231001X", "11010519491231003X"]  # the check characters are 1 and 8
WRONG_DIGIT_ID = "110105194912310012"  # the check character is 1
BAD_DATE_X_ID = "11010519491331003X"  # month 13; the check character of its first 17 digits is X


def test_resident_id_examples_are_what_they_claim():
    for number in VALID_IDS:
        assert check_char(number[:17]) == number[17]
    for number in [*WRONG_X_IDS, WRONG_DIGIT_ID]:
        assert check_char(number[:17]) != number[17]
    assert check_char(BAD_DATE_X_ID[:17]) == "X"


@pytest.mark.parametrize(
    ("number", "valid"),
    [
        *[(n, True) for n in VALID_IDS],
        ("11010519491231002x", True),
        *[(n, False) for n in [*WRONG_X_IDS, WRONG_DIGIT_ID, BAD_DATE_X_ID]],
        ("010105194912310021", False),  # region starts with 0
        ("110105170012310021", False),  # year 17xx
        ("110105194912320021", False),  # day 32
        ("11010519491231002", False),  # 17 characters
    ],
)
def test_is_resident_id(number, valid):
    assert is_resident_id(number) is valid


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # E-mail.
        ("write to alice.smith+ai@example.co.uk today", "write to [EMAIL] today"),
        ("张三 zhang_san@mail.qq.com", "张三 [EMAIL]"),
        ("both a@b.io and 13912345678", "both [EMAIL] and [PHONE]"),
        ("see <ops-team@corp.example.org>.", "see <[EMAIL]>."),
        ("a" * 70 + "@x.org", "a" * 6 + "[EMAIL]"),  # the local part is at most 64 characters
        # IDs.
        ("身份证号 11010519491231002X 请核对", "身份证号 [ID] 请核对"),
        ("id:440301199001011234.", "id:[ID]."),
        ("id 11010519491231002x", "id [ID]"),
        ("SSN 123-45-6789 on file", "SSN [ID] on file"),
        ("legacy 15 digits 110105491231002 ok", "legacy 15 digits [ID] ok"),
        ("card 6222021234567890123", "card [ID]"),
        ("card 4111 1111 1111 1111 ok", "card 4111 1111 1111 1111 ok"),  # grouped digits are not a run: decided
        # Phones.
        ("call 13812345678 now", "call [PHONE] now"),
        ("call +86 138-1234-5678 now", "call [PHONE] now"),
        ("call 0086 138 1234 5678 or 8613912345678", "call [PHONE] or [PHONE]"),
        ("office 010-12345678", "office [PHONE]"),
        ("office (021) 1234 5678", "office [PHONE]"),
        ("shenzhen 0755-1234567", "shenzhen [PHONE]"),
        ("US (555) 123-4567 or 555-123-4567 or 555.123.4567", "US [PHONE] or [PHONE] or [PHONE]"),
        ("intl +44 20 7946 0958", "intl [PHONE]"),
        ("intl +44 (0)20 7946 0958, +1 (555) 987-6543", "intl [PHONE], [PHONE]"),
        ("Paris +33 1 23 45 67 89.", "Paris [PHONE]."),
    ],
)
def test_personal_data_is_replaced(text, expected):
    assert redact(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # A Chinese character or Chinese punctuation touching the data does not stop it.
        ("邮箱zhang.san@example.com。", "邮箱[EMAIL]。"),
        ("请发邮件到：li_si@corp.cn，谢谢", "请发邮件到：[EMAIL]，谢谢"),
        ("QQ邮箱13812345678@qq.com", "QQ邮箱[EMAIL]"),  # e-mail first: the number is its local part
        ("电话010-12345678", "电话[PHONE]"),
        ("电话+86 138 1234 5678", "电话[PHONE]"),
        ("手机13812345678，座机(0755)1234567转8", "手机[PHONE]，座机[PHONE]转8"),
        ("电话：138-1234-5678；", "电话：[PHONE]；"),
        ("（手机：13812345678）", "（手机：[PHONE]）"),
        ("「13912345678」", "「[PHONE]」"),
        ("身份证号码11010519491231002X的用户", "身份证号码[ID]的用户"),
        ("身份证：320106200012310423。", "身份证：[ID]。"),
        ("卡号6222021234567890123已冻结", "卡号[ID]已冻结"),
        # Full-width digits and punctuation as Chinese input methods type them.
        ("手机号１３８１２３４５６７８。", "手机号[PHONE]。"),
        ("座机（010）12345678", "座机[PHONE]"),
        ("（０２１）１２３４ ５６７８", "[PHONE]"),
        ("＋86 139 8765 4321", "[PHONE]"),
        ("＋８６　１３９　８７６５　４３２１", "[PHONE]"),  # ideographic spaces
        ("１３８－１２３４－５６７８", "[PHONE]"),
        ("身份证：１１０１０５１９４９１２３１００２Ｘ。", "身份证：[ID]。"),
        ("身份证：１１０１０５１９４９１２３１００２ｘ", "身份证：[ID]"),
        # Mixed languages.
        (
            "Call me at 电话13812345678 or mail bob@example.com，谢谢！",
            "Call me at 电话[PHONE] or mail [EMAIL]，谢谢！",
        ),
        (
            "联系人：王五 (Wang Wu)，手机+86 139-8765-4321，ID 11010519491231002X",
            "联系人：王五 (Wang Wu)，手机[PHONE]，ID [ID]",
        ),
    ],
)
def test_chinese_text(text, expected):
    assert redact(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        *[(f"身份证{n}。", "身份证[ID]。") for n in VALID_IDS],
        ("id 11010519491231002x", "id [ID]"),
        # An 18-digit number is redacted even when its check digit fails (a long digit run, privacy first) ...
        (f"号码{WRONG_DIGIT_ID}", "号码[ID]"),
        # ... but 17 digits and an X that is not their check character are not an ID, nor is a bad birth date.
        *[(f"号码{n}。", f"号码{n}。") for n in WRONG_X_IDS],
        ("号码１１０１０５１９４９１２３１００１Ｘ", "号码１１０１０５１９４９１２３１００１Ｘ"),
        (f"号码{BAD_DATE_X_ID}", f"号码{BAD_DATE_X_ID}"),
    ],
)
def test_resident_id_check_digit(text, expected):
    assert redact(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("110105194912310021", "[ID]"),  # not a phone 11010519491 plus leftovers
        ("+86 110105194912310021", "+86 [ID]"),
        ("+1 110105194912310021 13812345678", "+1 [ID] [PHONE]"),
        ("8613812345678123", "[ID]"),  # 16 digits: a long run, not a phone
    ],
)
def test_ids_win_over_phones(text, expected):
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "The answer is 42 and pi is 3.14159",
        "pi = 3.141592653589793, p = 0.13912345678",  # decimals, however long
        "version 1.2.0 released in 2024-05-01",
        "版本1.2.3和v10.0.19041.1234",
        "order 12345 shipped, 3 items",
        "price 1999 yuan, 12% off",
        "价格¥1,299.00，优惠价￥999.00元",
        "会议时间2026-12-03 10:15:32，地点三楼",
        "2026年12月3日 14:30，2026.12.03，20261203",
        "a 10-digit number 1234567890 is not a phone without shape",
        "timestamps 1733220932 and 1733220932123",
        "a 12-digit run 138123456789 is not a phone",
        "订单号AB13812345678，编号13812345678AB，ＡＢ13812345678",  # a letter touching: part of a code
        "x110105194912310021 and 1101051949123100219999",  # a letter touching; 22 digits
        "ISBN 978-7-111-12345-6, part 12-123-45-6789-0",
        "IP 192.168.100.200, port 8080",
        "+1 2 is three, 1+1=2",
        "scores 95 87 92 and 3 (4) 5",
    ],
)
def test_ordinary_text_is_left_alone(text):
    assert redact(text) == text


def test_position_in_a_long_text_does_not_matter():
    pieces = [
        "邮箱zhang.san@example.com",
        "手机１３８１２３４５６７８",
        "身份证11010519491231002X",
        "错误的11010519491231001X",
        "office (021) 1234 5678",
        "版本1.2.3，价格¥1,299.00",
        "US 555-123-4567",
    ]
    filler = "今天天气很好，我们去公园散步。" * 50
    text = filler.join(pieces * 200)
    assert redact(text) == filler.join([redact(p) for p in pieces] * 200)
    assert redact(text).count("[PHONE]") == 3 * 200


def test_nested_messages_are_redacted_but_roles_kept():
    messages = [
        {"role": "system", "content": "be kind"},
        {"role": "user", "content": [{"type": "text", "text": "mail me at x@y.com"}]},
    ]
    assert redact_value(messages) == [
        {"role": "system", "content": "be kind"},
        {"role": "user", "content": [{"type": "text", "text": "mail me at [EMAIL]"}]},
    ]


def test_chat_messages_with_list_of_parts_content():
    messages = [
        {"role": "user", "name": "user_13812345678", "content": [
            {"type": "text", "text": "我的手机是１３８１２３４５６７８，"},
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "low"}},
            {"type": "text", "text": "身份证11010519491231002X。"},
        ]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"type": "function", "function": {"name": "lookup", "arguments": '{"phone": "+86 139 8765 4321"}'}},
        ]},
        {"role": "tool", "content": "found: li@example.cn", "tool_call_id": "call_1"},
    ]  # fmt: skip
    assert redact_value(messages) == [
        {"role": "user", "name": "user_13812345678", "content": [
            {"type": "text", "text": "我的手机是[PHONE]，"},
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "low"}},
            {"type": "text", "text": "身份证[ID]。"},
        ]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"type": "function", "function": {"name": "lookup", "arguments": '{"phone": "[PHONE]"}'}},
        ]},
        {"role": "tool", "content": "found: [EMAIL]", "tool_call_id": "call_1"},
    ]  # fmt: skip


def test_non_string_values_pass_through():
    assert redact_value({"n": 13812345678, "ok": True, "none": None, "f": 0.5}) == {
        "n": 13812345678,
        "ok": True,
        "none": None,
        "f": 0.5,
    }
