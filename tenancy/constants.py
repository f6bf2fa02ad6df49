DEFAULT_MAX_TASKS = 20
DEFAULT_MAX_COMPUTE_UNITS = 32
DEFAULT_MAX_TOKENS_PER_MINUTE = 100_000

# Credentials look like ``aicp_pat_<key id>_<secret>``: the key id finds the row, the secret is checked
# against its SHA-256 digest. 32 random bytes leave nothing for a slow hash to protect against; see
# tenancy/credentials.py.
PERSONAL_TOKEN_PREFIX = "aicp_pat"
TENANT_API_KEY_PREFIX = "aicp_sk"
CREDENTIAL_KEY_ID_BYTES = 6
CREDENTIAL_SECRET_BYTES = 32
