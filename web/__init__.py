"""The interfaces' shared pieces that apps build on: the API's body parsers and its error shape (the tier above
``tenancy``; the rest of ``controlplane/api/`` belongs here too and moves in its own change)."""
