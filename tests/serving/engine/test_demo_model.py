"""The demo model: a real Hugging Face folder, loadable offline, deterministic for a seed."""

from __future__ import annotations

import hashlib
import json

from serving.demo_model import build
from serving.engine.detok import IncrementalDetokenizer


def _digest(path) -> str:
    return hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()


def test_layout_and_chat_template(demo_model_dir):
    from transformers import AutoTokenizer

    for name in (
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
    ):
        assert (demo_model_dir / name).is_file(), name
    assert "chat_template" in json.loads((demo_model_dir / "tokenizer_config.json").read_text())
    tok = AutoTokenizer.from_pretrained(demo_model_dir, local_files_only=True)
    text = tok.apply_chat_template([{"role": "user", "content": "Hi"}], add_generation_prompt=True, tokenize=False)
    assert text.endswith("<|im_start|>assistant\n")


def test_build_is_deterministic_for_a_seed(tmp_path):
    a = build(tmp_path / "a", seed=3, train_steps=2, log=lambda *_: None)
    b = build(tmp_path / "b", seed=3, train_steps=2, log=lambda *_: None)
    assert _digest(a) == _digest(b)
    assert (a / "tokenizer.json").read_text() == (b / "tokenizer.json").read_text()


def test_incremental_detokenizer_never_emits_broken_utf8(demo_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(demo_model_dir, local_files_only=True)
    text = "héllo wörld 😀 — ok"
    detok = IncrementalDetokenizer(tok)
    pieces = [detok.add(t)[0] for t in tok.encode(text)]
    assert all("\ufffd" not in p for p in pieces)
    assert "".join(pieces) + detok.flush() == text
