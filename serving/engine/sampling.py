"""Per-request sampling: parameters, logits processors and the choice of the next token.

Every request in a batch carries its own parameters and its own ``torch.Generator``, so a seeded request draws the
same random numbers whether it runs alone or next to others (the draw never touches a shared RNG).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import torch


@dataclass
class SamplingParams:
    max_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0 or -1: off
    repetition_penalty: float = 1.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    ignore_eos: bool = False

    def validate(self) -> None:
        """Raise ValueError with an OpenAI-style message for out-of-range values."""
        if self.max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        if not 0.0 <= self.temperature <= 2.0:
            raise ValueError("temperature must be between 0 and 2")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError("top_p must be in (0, 1]")
        if self.top_k < -1:
            raise ValueError("top_k must be -1 (off), 0 (off) or positive")
        if self.repetition_penalty <= 0.0:
            raise ValueError("repetition_penalty must be positive")
        if any(not isinstance(s, str) or not s for s in self.stop):
            raise ValueError("stop must be a non-empty string or a list of them")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0 or self.top_k == 1

    def make_generator(self) -> torch.Generator:
        seed = self.seed if self.seed is not None else random.randrange(2**63)
        return torch.Generator().manual_seed(seed)


def apply_repetition_penalty(logits: torch.Tensor, seen_ids: torch.Tensor, penalty: float) -> torch.Tensor:
    """vLLM semantics: for tokens already in prompt + output, divide positive logits and multiply negative ones.

    ``logits`` is 1-D (vocab); ``seen_ids`` holds token ids (duplicates allowed). Returns a new tensor. The division
    is done as vLLM does it (``apply_repetition_penalties_torch`` in ``vllm/_custom_ops.py``): multiply by the
    penalty's reciprocal, both in the logits' dtype. ``x / p`` differs from that in the last bit for about one logit
    in ten, which can flip a greedy choice between two logits one bit apart.
    """
    if penalty == 1.0 or seen_ids.numel() == 0:
        return logits
    logits = logits.clone()
    ids = torch.unique(seen_ids)
    vals = logits[ids]
    penalty_t = torch.tensor(penalty, dtype=logits.dtype)
    logits[ids] = vals * torch.where(vals > 0, 1.0 / penalty_t, penalty_t)
    return logits


def top_k_top_p_filter(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Mask (with -inf) everything outside the top-k tokens and outside the smallest nucleus of mass ``top_p``."""
    if top_k > 0 and top_k < logits.numel():
        kth = torch.topk(logits, top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        # drop a token when the mass before it already reaches top_p (the first token is always kept)
        drop = (torch.cumsum(probs, dim=-1) - probs) >= top_p
        logits = logits.clone()
        logits[order[drop]] = float("-inf")
    return logits


def choose_token(
    logits: torch.Tensor, params: SamplingParams, seen_ids: torch.Tensor, generator: torch.Generator
) -> int:
    """Pick the next token for one sequence from its 1-D float logits."""
    logits = apply_repetition_penalty(logits.float(), seen_ids, params.repetition_penalty)
    if params.greedy:
        return int(torch.argmax(logits))
    logits = top_k_top_p_filter(logits / params.temperature, params.top_k, params.top_p)
    probs = torch.softmax(logits, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))
