"""The inference-task adapter: an OpenAI-compatible front (auth, policy, limits, metrics, reflow) before the engine.

Run it as ``python -m serving.adapter --config FILE --upstream URL``; see config.py for the config file and
spool.py for the ingest contract.
"""
