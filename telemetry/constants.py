from datetime import timedelta

# A batch from an adapter holds at most this many records (the adapter's ingest.batch_size is capped to match).
MAX_INGEST_RECORDS = 1000
# A record may be stamped this far ahead of the control plane's clock (nodes' clocks drift); further is refused.
MAX_CLOCK_SKEW = timedelta(minutes=10)
