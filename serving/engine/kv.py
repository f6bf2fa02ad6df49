"""The left-padded batch KV cache used by the batched decode step.

Layout: for every layer, keys/values of shape [batch, kv_heads, T, head_dim]. Row r keeps its ``cached_len`` real
positions at the right end and zeros on the left; ``mask`` ([batch, T], 1 = real) tells attention to ignore the
zeros. Because every row appends one position per step, the real part stays right-aligned, so a row can be cut out
again at any time as ``[..., T - cached_len:, :]``.

Rebuilding copies the whole cache, so it is done only when the set of running sequences changes (a request joined
or left); a rebuild also drops padding columns that no row needs any more (after the longest sequence left).
"""

from __future__ import annotations

import torch
from transformers import DynamicCache


class BatchState:
    def __init__(self):
        self.row_ids: list[int] = []
        self.cache: DynamicCache | None = None
        self.mask: torch.Tensor | None = None

    @property
    def width(self) -> int:
        return 0 if self.mask is None else self.mask.shape[1]

    def sync(self, seqs) -> None:
        """Make the batch hold exactly ``seqs`` in this order (rebuilding only if membership or order changed)."""
        ids = [s.id for s in seqs]
        if ids == self.row_ids:
            return
        old_rows = {sid: r for r, sid in enumerate(self.row_ids)}
        per_seq = [self._take(s, old_rows.get(s.id)) for s in seqs]
        width = max(s.cached_len for s in seqs)
        n_layers = len(per_seq[0])
        layers = []
        for layer in range(n_layers):
            keys = [self._pad_left(kv[layer][0], width) for kv in per_seq]
            values = [self._pad_left(kv[layer][1], width) for kv in per_seq]
            layers.append((torch.cat(keys), torch.cat(values)))
        device = layers[0][0].device
        mask = torch.zeros(len(seqs), width, dtype=torch.long, device=device)
        for row, seq in enumerate(seqs):
            mask[row, width - seq.cached_len :] = 1
        self.cache = DynamicCache(ddp_cache_data=layers)
        self.mask = mask
        self.row_ids = ids
        for seq in seqs:
            seq.prefill_cache = None  # now owned by the batch cache

    def _take(self, seq, old_row: int | None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """One sequence's unpadded per-layer (keys, values), each [1, kv_heads, cached_len, head_dim]."""
        if old_row is None:
            assert seq.prefill_cache is not None, "a new sequence must come with its prefill cache"
            return seq.prefill_cache
        start = self.width - seq.cached_len
        return [
            (layer.keys[old_row : old_row + 1, :, start:], layer.values[old_row : old_row + 1, :, start:])
            for layer in self.cache.layers
        ]

    @staticmethod
    def _pad_left(t: torch.Tensor, width: int) -> torch.Tensor:
        missing = width - t.shape[2]
        if missing == 0:
            return t
        pad = torch.zeros(t.shape[0], t.shape[1], missing, t.shape[3], dtype=t.dtype, device=t.device)
        return torch.cat([pad, t], dim=2)

    def step_mask(self) -> torch.Tensor:
        """The attention mask for the next step: the cache plus the one new position of every row."""
        ones = torch.ones(self.mask.shape[0], 1, dtype=self.mask.dtype, device=self.mask.device)
        return torch.cat([self.mask, ones], dim=1)

    def advance(self, mask: torch.Tensor) -> None:
        self.mask = mask
