"""A tiny Llama-architecture demo model, built and (briefly) trained locally from text shipped in the repo.

Why: the embedded default and the tests need a real Hugging Face model folder (config.json, tokenizer files with a
chat template, safetensors weights, generation_config.json) that goes through the same loading path as a tenant's
model, without downloading anything. A few seconds of CPU training make it emit words instead of noise.

Determinism: with ``train_steps`` (or ``train_seconds=0``) the output is a pure function of ``seed``. A
``train_seconds`` budget stops on the wall clock, so the number of steps (and thus the weights) may vary by machine.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

CORPUS = Path(__file__).with_name("corpus.txt")
EOS, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS = [EOS, IM_START, IM_END]
# ChatML, the template most open chat models use. A missing system message is simply left out.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _documents(corpus: str) -> list[str]:
    """Plain sentences plus question/answer lines rendered as chats, so the model learns to stop with <|im_end|>."""
    docs = []
    for line in corpus.splitlines():
        line = line.strip()
        if not line:
            continue
        docs.append(line + EOS)
        if "? " in line:
            question, answer = line.split("? ", 1)
            docs.append(f"{IM_START}user\n{question}?{IM_END}\n{IM_START}assistant\n{answer}{IM_END}\n{EOS}")
    return docs


def _train_tokenizer(docs: list[str], vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(docs, trainer=trainer)
    return tok


def build(
    out: str | Path,
    *,
    seed: int = 0,
    train_seconds: float = 60.0,
    train_steps: int | None = None,
    vocab_size: int = 640,
    log=print,
) -> Path:
    """Write the model folder to ``out`` and return its path."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    random.seed(seed)
    torch.manual_seed(seed)
    docs = _documents(CORPUS.read_text(encoding="utf-8"))
    raw = _train_tokenizer(docs, vocab_size)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw, eos_token=EOS, pad_token=EOS, bos_token=None, unk_token=None, model_max_length=512
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    eos_id, im_end_id = tokenizer.convert_tokens_to_ids([EOS, IM_END])

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=192,
        intermediate_size=512,
        num_hidden_layers=3,
        num_attention_heads=6,
        num_key_value_heads=2,
        max_position_embeddings=512,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=[eos_id, im_end_id],
        pad_token_id=eos_id,
    )
    model = LlamaForCausalLM(config)
    steps = _train(model, tokenizer, docs, seed=seed, seconds=train_seconds, max_steps=train_steps, log=log)
    model.eval()
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    # Also keep the template in tokenizer_config.json, where older transformers versions and other runtimes look.
    tok_config_path = out / "tokenizer_config.json"
    tok_config = json.loads(tok_config_path.read_text())
    tok_config.update(chat_template=CHAT_TEMPLATE, tokenizer_class="PreTrainedTokenizerFast")
    tok_config_path.write_text(json.dumps(tok_config, indent=2) + "\n")
    GenerationConfig(eos_token_id=[eos_id, im_end_id], pad_token_id=eos_id, do_sample=False).save_pretrained(out)
    (out / "aicp_demo_model.json").write_text(json.dumps({"seed": seed, "train_steps": steps}) + "\n")
    log(f"demo model written to {out} ({steps} training steps)")
    return out


def _train(model, tokenizer, docs, *, seed, seconds, max_steps, log, seq_len=64, batch_size=16) -> int:
    """Next-token training on random windows of the tokenised corpus; returns the number of steps taken."""
    import torch

    ids = torch.tensor([t for doc in docs for t in tokenizer.encode(doc)], dtype=torch.long)
    if (max_steps is not None and max_steps <= 0) or (max_steps is None and seconds <= 0):
        return 0
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    model.train()
    deadline = time.monotonic() + seconds
    step = 0
    while (max_steps is None or step < max_steps) and (max_steps is not None or time.monotonic() < deadline):
        starts = torch.randint(0, len(ids) - seq_len, (batch_size,), generator=gen)
        batch = torch.stack([ids[s : s + seq_len] for s in starts.tolist()])
        loss = model(input_ids=batch, labels=batch).loss  # transformers shifts the labels itself
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % 50 == 0:
            log(f"step {step} loss {loss.item():.3f}")
    return step
