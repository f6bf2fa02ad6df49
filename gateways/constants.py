# SPEC rule 2: each task published through a gateway takes one of its ports, and a gateway has at most 16.
MAX_PORTS_PER_GATEWAY = 16
