"""The sizing advisor: how many compute units (cards) one instance of a model needs.

Memory needed = weights + KV cache for the full context + a runtime reserve. Cards by memory = that
divided by the usable memory of one card (vLLM reserves ``gpu_memory_utilization`` = 0.9 of it), rounded up
to a power of two because tensor parallelism splits attention heads evenly. SPEC's table is the floor:
< 30B parameters → 2 cards, 30–70B → 4 (up to 8), > 70B → 8 (up to 16). The recommendation is the larger of
the two, so a long context or a small card raises it above the table, never below.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from inference_jobs.constants import MAX_COMPUTE_UNITS_PER_INSTANCE

GIB = 1024**3
CARD_MEMORY_UTILIZATION = 0.9
RUNTIME_RESERVE_FRACTION = 0.10  # activations, CUDA graphs, allocator slack, as a share of the weights
DEFAULT_CONTEXT_LENGTH = 4096

DTYPE_BYTES: dict[str, float] = {
    "float32": 4,
    "fp32": 4,
    "float16": 2,
    "fp16": 2,
    "half": 2,
    "bfloat16": 2,
    "bf16": 2,
    "float8": 1,
    "fp8": 1,
    "float8_e4m3fn": 1,
    "int8": 1,
    "int4": 0.5,
}
DEFAULT_DTYPE = "bfloat16"


@dataclass(frozen=True)
class SizeBracket:
    """A row of SPEC's recommendation table: models below ``below_parameters`` get ``minimum``..``maximum``."""

    below_parameters: float
    minimum: int
    maximum: int


SPEC_TABLE = (
    SizeBracket(30e9, 2, 2),
    SizeBracket(70e9 + 1, 4, 8),  # 30–70B inclusive
    SizeBracket(math.inf, 8, 16),
)


@dataclass(frozen=True)
class SizingAdvice:
    parameter_count: int | None
    dtype: str
    context_length: int
    concurrent_sequences: int
    weights_bytes: int
    kv_cache_bytes: int
    runtime_reserve_bytes: int
    total_bytes: int
    memory_per_card_gib: int
    cards_by_memory: int
    table_minimum: int
    table_maximum: int
    recommended: int
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _power_of_two_at_least(value: int) -> int:
    return 1 if value <= 1 else 1 << (value - 1).bit_length()


def estimate_parameter_count(config: dict[str, Any]) -> int | None:
    """Parameters of a decoder-only transformer from its config.json, for models whose weights could not be
    read. Exact for Llama-style models (embeddings, attention with grouped KV heads, gated MLP, norms)."""
    try:
        hidden = int(config["hidden_size"])
        layers = int(config["num_hidden_layers"])
        heads = int(config["num_attention_heads"])
        vocab = int(config["vocab_size"])
        intermediate = int(config.get("intermediate_size") or 4 * hidden)
    except (KeyError, TypeError, ValueError):
        return None
    kv_heads = int(config.get("num_key_value_heads") or heads)
    head_dim = int(config.get("head_dim") or hidden // heads)
    attention = hidden * heads * head_dim * 2 + hidden * kv_heads * head_dim * 2
    mlp = 3 * hidden * intermediate
    per_layer = attention + mlp + 2 * hidden
    embeddings = vocab * hidden * (1 if config.get("tie_word_embeddings") else 2)
    return layers * per_layer + embeddings + hidden


def kv_cache_bytes_per_token(config: dict[str, Any], dtype_bytes: float) -> int:
    """Keys and values of every layer for one token: 2 × layers × KV heads × head size × bytes."""
    try:
        hidden = int(config["hidden_size"])
        layers = int(config["num_hidden_layers"])
        heads = int(config["num_attention_heads"])
    except (KeyError, TypeError, ValueError):
        return 0
    kv_heads = int(config.get("num_key_value_heads") or heads)
    head_dim = int(config.get("head_dim") or hidden // heads)
    return int(2 * layers * kv_heads * head_dim * dtype_bytes)


def table_bracket(parameter_count: int | None) -> SizeBracket:
    if parameter_count is None:
        return SPEC_TABLE[0]
    return next(bracket for bracket in SPEC_TABLE if parameter_count < bracket.below_parameters)


def size_model(
    *,
    parameter_count: int | None,
    dtype: str | None,
    config: dict[str, Any] | None,
    memory_per_card_gib: int,
    context_length: int | None = None,
    concurrent_sequences: int = 1,
) -> SizingAdvice:
    config = config or {}
    notes: list[str] = []
    dtype = (dtype or "").lower() or DEFAULT_DTYPE
    if dtype not in DTYPE_BYTES:
        notes.append(f"Unknown dtype '{dtype}'; sized as {DEFAULT_DTYPE}.")
        dtype = DEFAULT_DTYPE
    dtype_bytes = DTYPE_BYTES[dtype]
    if parameter_count is None:
        parameter_count = estimate_parameter_count(config)
        if parameter_count is not None:
            notes.append("Parameter count estimated from config.json.")
        else:
            notes.append("Parameter count unknown; the smallest bracket of the table applies.")
    context_length = context_length or int(config.get("max_position_embeddings") or DEFAULT_CONTEXT_LENGTH)

    weights = int((parameter_count or 0) * dtype_bytes)
    kv_cache = kv_cache_bytes_per_token(config, dtype_bytes) * context_length * concurrent_sequences
    reserve = int(weights * RUNTIME_RESERVE_FRACTION)
    total = weights + kv_cache + reserve
    usable_per_card = memory_per_card_gib * GIB * CARD_MEMORY_UTILIZATION
    cards_by_memory = _power_of_two_at_least(max(1, math.ceil(total / usable_per_card))) if usable_per_card else 1

    bracket = table_bracket(parameter_count)
    recommended = max(bracket.minimum, cards_by_memory)
    if recommended > MAX_COMPUTE_UNITS_PER_INSTANCE:
        notes.append(
            f"Needs {recommended} cards of {memory_per_card_gib} GiB; one instance takes at most "
            f"{MAX_COMPUTE_UNITS_PER_INSTANCE}. Use cards with more memory or a shorter context."
        )
        recommended = MAX_COMPUTE_UNITS_PER_INSTANCE
    return SizingAdvice(
        parameter_count=parameter_count,
        dtype=dtype,
        context_length=context_length,
        concurrent_sequences=concurrent_sequences,
        weights_bytes=weights,
        kv_cache_bytes=kv_cache,
        runtime_reserve_bytes=reserve,
        total_bytes=total,
        memory_per_card_gib=memory_per_card_gib,
        cards_by_memory=cards_by_memory,
        table_minimum=bracket.minimum,
        table_maximum=max(bracket.maximum, recommended),
        recommended=recommended,
        notes=notes,
    )


def size_model_for_pool(model, pool, *, context_length: int | None = None, concurrent_sequences: int = 1):
    """The advice for ``model`` on the cards of ``pool``: what the create form offers by default."""
    return size_model(
        parameter_count=model.parameter_count,
        dtype=model.dtype,
        config=model.config,
        memory_per_card_gib=pool.memory_per_card_gib,
        context_length=context_length or model.context_length,
        concurrent_sequences=concurrent_sequences,
    )
