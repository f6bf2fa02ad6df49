"""The normal-mode (PyTorch) serving engine: an OpenAI-compatible server with asynchronous batch inference.

``python -m serving.engine --model DIR`` serves a Hugging Face model folder from local disk. See ``core`` for the
scheduler and KV-cache design, ``server`` for the HTTP API and ``bench`` for the batching benchmark.
"""
