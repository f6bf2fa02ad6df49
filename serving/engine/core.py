"""The engine core: a model, a scheduler thread, and continuous ("asynchronous") batching over a KV cache.

Design (why it looks like this):
- The asyncio front end never runs the model. It submits a ``Sequence`` and reads events from an
  ``asyncio.Queue``; the one worker thread pushes events with ``loop.call_soon_threadsafe``. torch releases the
  GIL inside kernels, so the event loop keeps serving HTTP while the worker computes.
- The worker runs a step loop: admit waiting requests (each is prefilled alone, batch size 1, which yields its own
  KV cache and its first token), then run ONE batched forward pass that decodes one token for every running
  sequence. New requests therefore join between steps and finished ones leave between steps.
- Sequences have different lengths, so the batch cache is left-padded: row r holds its real keys/values at the
  right end and zeros on the left; a 2-D attention mask hides the padding and explicit ``position_ids`` give each
  row its own positions. That is exactly how transformers' ``generate`` handles a left-padded batch, so a
  sequence's logits match (to float rounding) what it would get alone.
- The padded batch cache is rebuilt only when the membership changes (see ``BatchState``); on ordinary steps the
  model appends to it in place.
- With batching off the same loop runs with at most one sequence: requests queue and run one after the other.
- Every sampled token becomes one event, even when it adds no text yet (held back by the detokeniser, or a special
  token): vLLM streams one chunk per token step the same way, and the front end shapes its SSE stream from these
  events exactly as vLLM does (see ``server.py``). The last token's event carries the finish reason.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import torch

from serving.engine.detok import IncrementalDetokenizer
from serving.engine.kv import BatchState
from serving.engine.metrics import EngineMetrics
from serving.engine.sampling import SamplingParams, choose_token

log = logging.getLogger(__name__)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_ids = itertools.count(1)


@dataclass
class Sequence:
    """One request's generation state. Touched by the worker thread only, except ``cancelled``."""

    prompt_ids: list[int]
    params: SamplingParams
    detok: IncrementalDetokenizer
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue  # events for the front end; only ever filled on ``loop`` (see Engine._flush)
    id: int = field(default_factory=lambda: next(_ids))
    output_ids: list[int] = field(default_factory=list)
    generator: torch.Generator | None = None
    prefill_cache: list[tuple[torch.Tensor, torch.Tensor]] | None = None
    finish_reason: str | None = None
    cancelled: bool = False
    arrival: float = field(default_factory=time.monotonic)

    @property
    def cached_len(self) -> int:
        """Tokens whose keys/values are in the cache: the last sampled token is fed at the next step."""
        return len(self.prompt_ids) + len(self.output_ids) - 1

    def seen_ids(self) -> torch.Tensor:
        return torch.tensor(self.prompt_ids + self.output_ids, dtype=torch.long)


class Engine:
    """Loads a Hugging Face model folder from disk and generates for many concurrent requests."""

    def __init__(
        self,
        model_dir: str | Path,
        *,
        batching: bool = True,
        max_batch_size: int = 16,
        device: str = "cpu",
        dtype: str = "float32",
        metrics: EngineMetrics | None = None,
    ):
        from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

        self.model_dir = Path(model_dir)
        self.device = torch.device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir, local_files_only=True)
        self.model = AutoModelForCausalLM.from_pretrained(
            self.model_dir, local_files_only=True, dtype=DTYPES[dtype], attn_implementation="sdpa"
        ).to(self.device)
        self.model.eval()
        self.max_model_len = int(getattr(self.model.config, "max_position_embeddings", 2048))
        self.eos_ids = self._eos_ids(GenerationConfig)
        self.batching = batching
        self.max_batch_size = max_batch_size if batching else 1
        self.metrics = metrics or EngineMetrics()
        # The KV positions the engine can hold at most: the denominator of vllm:kv_cache_usage_perc (metrics.py).
        self.kv_capacity = self.max_batch_size * self.max_model_len
        self._waiting: deque[Sequence] = deque()
        self._running: list[Sequence] = []
        self._cond = threading.Condition()
        self._stopping = False
        self._outbox: list[tuple[Sequence, dict]] = []
        self._thread = threading.Thread(target=self._loop, name="engine-worker", daemon=True)
        self._thread.start()

    def _eos_ids(self, generation_config_cls) -> set[int]:
        ids: set[int] = set()
        try:
            gen = generation_config_cls.from_pretrained(self.model_dir, local_files_only=True)
            ids.update([gen.eos_token_id] if isinstance(gen.eos_token_id, int) else gen.eos_token_id or [])
        except OSError:
            pass
        cfg = self.model.config.eos_token_id
        ids.update([cfg] if isinstance(cfg, int) else cfg or [])
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        return ids

    # -- front-end API (called from the event loop) -------------------------------------------------------------

    def submit(self, prompt_ids: list[int], params: SamplingParams) -> tuple[Sequence, asyncio.Queue]:
        """Queue a request; events arrive on the returned queue, one per sampled token: {"text", "tokens"} ("text"
        may be ""), the last one {"text", "finish", "prompt_tokens", "completion_tokens"}; or one {"error"}."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        seq = Sequence(
            prompt_ids=list(prompt_ids),
            params=params,
            detok=IncrementalDetokenizer(self.tokenizer, params.stop),
            loop=loop,
            queue=queue,
            generator=params.make_generator(),
        )
        with self._cond:
            self._waiting.append(seq)
            self.metrics.set_waiting(len(self._waiting))
            self._cond.notify()
        return seq, queue

    def abort(self, seq: Sequence) -> None:
        """The client went away: the worker drops the sequence at its next step."""
        seq.cancelled = True

    def shutdown(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(timeout=10)

    # -- worker thread -------------------------------------------------------------------------------------------

    def _loop(self) -> None:
        batch = BatchState()
        while True:
            with self._cond:
                while not self._stopping and not self._waiting and not self._running:
                    self._cond.wait()
                if self._stopping:
                    return
                admitted = []
                while self._waiting and len(self._running) + len(admitted) < self.max_batch_size:
                    admitted.append(self._waiting.popleft())
                self.metrics.set_waiting(len(self._waiting))
            self._publish_running(self._running + admitted)  # prefill counts as running, as in vLLM
            try:
                with torch.inference_mode():
                    for seq in admitted:
                        self._prefill(seq)
                    self._flush()  # first tokens go out before the decode step (TTFT)
                    self._running.extend(admitted)
                    self._retire()
                    if self._running:
                        self._decode_step(batch)
                        self._retire()
            except Exception as exc:  # a broken step must not wedge the server: fail the affected requests
                log.exception("engine step failed")
                for seq in {s.id: s for s in admitted + self._running}.values():
                    if seq.finish_reason is None:
                        seq.finish_reason = "error"
                        self._emit(seq, {"error": f"engine error: {exc}"})
                self._running = []
                batch = BatchState()
                self._publish_running(self._running)
            self._flush()

    def _emit(self, seq: Sequence, event: dict) -> None:
        self._outbox.append((seq, event))

    def _flush(self) -> None:
        """Hand this step's events to the event loop(s) in one wake-up each, not one per token (fewer syscalls)."""
        by_loop: dict[asyncio.AbstractEventLoop, list] = {}
        for seq, event in self._outbox:
            by_loop.setdefault(seq.loop, []).append((seq.queue, event))
        self._outbox = []
        for loop, items in by_loop.items():
            if not loop.is_closed():
                loop.call_soon_threadsafe(_deliver, items)

    def _retire(self) -> None:
        """Drop finished and cancelled sequences; the batch cache notices the change at the next ``sync``."""
        self._running = [s for s in self._running if s.finish_reason is None and not s.cancelled]
        self._publish_running(self._running)

    def _publish_running(self, seqs: list[Sequence]) -> None:
        """Running count and KV-cache use for /metrics: each sequence holds its prompt and output positions."""
        used = sum(len(s.prompt_ids) + len(s.output_ids) for s in seqs)
        self.metrics.set_running(len(seqs), min(1.0, used / self.kv_capacity))

    def _prefill(self, seq: Sequence) -> None:
        """Run the prompt alone (no padding); keep its KV cache for the batch and sample its first token."""
        if seq.cancelled:  # the client left while queued
            seq.finish_reason = "abort"
            return
        ids = torch.tensor([seq.prompt_ids], dtype=torch.long, device=self.device)
        out = self.model(input_ids=ids, use_cache=True, logits_to_keep=1)
        cache = out.past_key_values
        seq.prefill_cache = [(layer.keys, layer.values) for layer in cache.layers]
        self._accept(seq, out.logits[0, -1])

    def _decode_step(self, batch: BatchState) -> None:
        """One batched forward pass: one new token for every running sequence."""
        seqs = self._running
        batch.sync(seqs)
        self.metrics.batch_size.observe(len(seqs))
        input_ids = torch.tensor([[s.output_ids[-1]] for s in seqs], dtype=torch.long, device=self.device)
        position_ids = torch.tensor([[s.cached_len] for s in seqs], dtype=torch.long, device=self.device)
        mask = batch.step_mask()
        out = self.model(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=position_ids,
            past_key_values=batch.cache,
            use_cache=True,
        )
        batch.advance(mask)
        logits = out.logits[:, -1].float().cpu()
        greedy = torch.argmax(logits, dim=-1).tolist()  # one vectorised argmax serves all plain-greedy rows
        for row, seq in enumerate(seqs):
            self._accept(seq, logits[row], greedy[row])

    def _accept(self, seq: Sequence, logits: torch.Tensor, argmax: int | None = None) -> None:
        """Sample, detokenise, check stop conditions, and stream the result to the request."""
        if seq.cancelled:
            seq.finish_reason = "abort"
            return
        p = seq.params
        if argmax is not None and p.greedy and p.repetition_penalty == 1.0:
            token = argmax
        else:
            seen = seq.seen_ids() if p.repetition_penalty != 1.0 else torch.empty(0, dtype=torch.long)
            token = choose_token(logits.float().cpu(), p, seen, seq.generator)
        seq.output_ids.append(token)
        self.metrics.generation_tokens.inc()
        if len(seq.output_ids) == 1:
            self.metrics.ttft.observe(time.monotonic() - seq.arrival)
        if token in self.eos_ids and not seq.params.ignore_eos:
            seq.finish_reason = "stop"
            text, _ = seq.detok.add(token)  # special tokens decode to "", this only flushes held-back text
        else:
            text, hit_stop = seq.detok.add(token)
            if hit_stop:
                seq.finish_reason = "stop"
            elif len(seq.output_ids) >= seq.params.max_tokens or seq.cached_len + 1 >= self.max_model_len:
                seq.finish_reason = "length"
        if seq.finish_reason is None:
            self._emit(seq, {"text": text, "tokens": len(seq.output_ids)})
            return
        text += seq.detok.flush()  # held-back tail (a partial stop string that never completed); "" after a stop
        self._emit(
            seq,
            {
                "text": text,
                "finish": seq.finish_reason,
                "prompt_tokens": len(seq.prompt_ids),
                "completion_tokens": len(seq.output_ids),
            },
        )
        seq.prefill_cache = None


def _deliver(items: list[tuple[asyncio.Queue, dict]]) -> None:
    for queue, event in items:
        queue.put_nowait(event)
