# SPEC rule 1.
MAX_TASKS_PER_PLATFORM = 500

DEFAULT_TEMPERATURE = 0.7
DEFAULT_TOP_P = 0.9
DEFAULT_REPETITION_PENALTY = 1.0
DEFAULT_TTFT_SLO_MS = 2000
DEFAULT_TPOT_SLO_MS = 100
MAX_INSTANCES = 64
MAX_COMPUTE_UNITS_PER_INSTANCE = 16

# An instance's engine-load snapshot counts towards its task's load while it is at most this much older than the
# task's newest snapshot (adapters report every 5 s: an instance silent this long is gone or stuck).
ENGINE_LOAD_FRESH_S = 60
