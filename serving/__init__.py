"""The AICP data plane: what runs inside a task's pods (or as local processes in the embedded default).

It never imports Django or the control-plane apps: it is configured by flags, a config file and the
environment, and talks to the control plane over HTTP only.
"""
