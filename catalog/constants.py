"""Numbers of the model catalogue, named once."""

# Storage layout under settings.AICP_STORAGE_ROOT: models/<tenant slug>/<model id>/, and a staging folder on
# the same file system so that a finished upload moves into place with one rename.
MODELS_FOLDER = "models"
STAGING_FOLDER = ".staging"

# An upload's multipart envelope (boundaries, headers, form fields) on top of the files themselves: a request
# whose declared length exceeds the limit by more than this is refused before a byte is read.
MULTIPART_OVERHEAD_ALLOWANCE_BYTES = 1024**2

# An archive of more members than this is refused: a model folder has tens of files, not millions of inodes.
MAX_ARCHIVE_MEMBERS = 10_000

# The safetensors format caps its JSON header at 100 MB; a larger length prefix means a corrupt file.
MAX_SAFETENSORS_HEADER_BYTES = 100 * 1024**2

# A model's family is guessed from a validated family of the same architecture within this share of its
# parameter count.
FAMILY_MATCH_TOLERANCE = 0.15

COPY_CHUNK_BYTES = 1024**2
