"""``RequestBody``: parsed like ``json.loads``, sent on with the caller's bytes for every value not replaced."""

from __future__ import annotations

import json
import tempfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from serving.adapter.body import RequestBody

set_hypothesis_home_dir(tempfile.mkdtemp(prefix="aicp-hypothesis-"))  # its caches stay out of the tree

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
bodies = st.dictionaries(st.text(), json_values, max_size=6) | st.fixed_dictionaries(
    {"messages": st.lists(st.dictionaries(st.text(), json_values, max_size=3), max_size=4)},
    optional={"model": st.text(), "temperature": st.floats(0, 2)},
)


@settings(max_examples=300, deadline=None, database=None)
@given(body=bodies, ascii_only=st.booleans(), indent=st.sampled_from([None, 0, 2]))
def test_it_reads_what_json_loads_reads_and_sends_an_unchanged_body_as_the_same_value(body, ascii_only, indent):
    raw = json.dumps(body, ensure_ascii=ascii_only, indent=indent).encode()
    parsed = RequestBody(raw)
    assert parsed.data == json.loads(raw)
    assert json.loads(parsed.encode()) == json.loads(raw)


def test_values_the_policy_did_not_replace_keep_the_callers_bytes_escapes_included():
    raw = (
        b'{"model" : "chat", "messages": [ {"role":"system","content":"old"},\n'
        b' {"role": "user", "content": "\\u4e2d\\u6587 1.50e2 \xe4\xb8\xad"} ],'
        b' "temperature": 1.50, "user": "\\ud83d\\ude00", "extra": {"b": 1, "a": [1.0, 2]}}'
    )
    parsed = RequestBody(raw)
    data = parsed.data
    data["model"] = "engine-model"
    data["messages"] = [{"role": "system", "content": "新的"}, *data["messages"][1:]]
    data["top_p"] = 0.9
    sent = parsed.encode()
    assert sent == (
        b'{"model":"engine-model","messages":[{"role":"system","content":"\xe6\x96\xb0\xe7\x9a\x84"},'
        b'{"role": "user", "content": "\\u4e2d\\u6587 1.50e2 \xe4\xb8\xad"}],'
        b'"temperature":1.50,"user":"\\ud83d\\ude00","extra":{"b": 1, "a": [1.0, 2]},"top_p":0.9}'
    )


def test_a_new_value_with_a_lone_surrogate_is_sent_escaped_and_the_rest_as_utf8():
    parsed = RequestBody('{"messages": [{"role": "user", "content": "中"}]}'.encode())
    parsed.data["messages"] = [{"role": "system", "content": "half \ud800"}, *parsed.data["messages"]]
    sent = parsed.encode()
    assert b"half \\ud800" in sent and '"中"'.encode() in sent
    assert json.loads(sent)["messages"][0]["content"] == "half \ud800"


def test_duplicate_keys_read_as_json_loads_reads_them_and_are_sent_once():
    parsed = RequestBody(b'{"a": 1, "b": 2, "a": 3}')
    assert parsed.data == {"a": 3, "b": 2} and parsed.encode() == b'{"a":3,"b":2}'


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b'{"a":', b'{"a" 1}', b'{"a":1,}', b'{"a":1} x', b"{'a':1}", b'{"a":1 "b":2}', b'{"a":[1,}',
     b'{"messages": [1, 2', b'{"messages": [1 2]}', b'\xff{"a":1}', b'{"a":"\xff"}', b"{1: 2}"],
)  # fmt: skip
def test_what_json_loads_refuses_it_refuses(raw):
    with pytest.raises(ValueError):
        json.loads(raw)
    with pytest.raises(ValueError):
        RequestBody(raw)


def test_a_body_that_is_not_an_object_is_read_as_it_is():
    assert RequestBody(b" [1, 2] ").data == [1, 2]
    assert RequestBody(b'"text"').data == "text"
