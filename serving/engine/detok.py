"""Incremental detokenisation with stop strings.

Why decode the whole output each time: byte-level BPE tokens are not text on their own (a character may span
tokens, and a token's leading space depends on its neighbours), so the only safe text is ``decode(all ids)``. We
emit the new suffix, holding back (a) a trailing U+FFFD (an incomplete UTF-8 character) and (b) any tail that
could be the beginning of a stop string, so a stop string never leaks into the stream.

When several stop strings match in the text one token added, the one that *completes* first wins (ties: the first
in the request's list), as in vLLM (``vllm/v1/engine/detokenizer.py``, ``check_stop_strings``): it is the one a
character-by-character reader would have met first. With ``stop=["the", "h"]`` and a token " the", the output keeps
" t", not "".
"""

from __future__ import annotations


class IncrementalDetokenizer:
    def __init__(self, tokenizer, stop: list[str] | None = None):
        self.tokenizer = tokenizer
        self.stop = list(stop or [])
        self._max_stop = max((len(s) for s in self.stop), default=0)
        self.ids: list[int] = []
        self.text = ""  # decoded output so far (may end with held-back characters)
        self.sent = 0  # number of characters of ``text`` already emitted

    def _decode(self) -> str:
        return self.tokenizer.decode(self.ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def add(self, token_id: int) -> tuple[str, bool]:
        """Append a token; return (text safe to emit now, whether a stop string was hit)."""
        self.ids.append(token_id)
        self.text = self._decode()
        if self.stop:
            start = max(0, self.sent - self._max_stop + 1)
            # (end, list position, start) of each stop string's first match; min() is the one completed first
            hits = [(i + len(s), n, i) for n, s in enumerate(self.stop) if (i := self.text.find(s, start)) >= 0]
            if hits:
                cut = max(min(hits)[2], self.sent)
                delta, self.sent = self.text[self.sent : cut], cut
                self.text = self.text[:cut]
                return delta, True
        end = len(self.text.rstrip("\ufffd"))
        end -= self._partial_stop_len(self.text[:end])
        if end <= self.sent:
            return "", False
        delta, self.sent = self.text[self.sent : end], end
        return delta, False

    def _partial_stop_len(self, text: str) -> int:
        """Length of the longest suffix of ``text`` that is a proper prefix of some stop string."""
        best = 0
        for s in self.stop:
            for k in range(min(len(s) - 1, len(text)), best, -1):
                if text.endswith(s[:k]):
                    best = k
                    break
        return best

    def flush(self) -> str:
        """The held-back tail, emitted when the sequence ends for another reason than a stop string."""
        delta, self.sent = self.text[self.sent :], len(self.text)
        return delta

    @property
    def output_text(self) -> str:
        return self.text[: self.sent]
