"""Serving benchmark: a streaming OpenAI-API load client (``python -m serving.bench``) with the metrics of
``vllm bench serve`` (SPEC "Performance metrics"), and a fixed-rate fake upstream to measure against
(``python -m serving.bench.fake_upstream``). Standard library and aiohttp only; no Django.
"""
