"""The ``kubernetes`` orchestrator backend: ``render`` (pure), ``api`` (every API call), ``backend`` (converge)."""
