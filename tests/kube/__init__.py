"""An in-process Kubernetes API-server emulator (served over real HTTP) and its tests."""
