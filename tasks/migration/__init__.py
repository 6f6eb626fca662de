"""Migration waves (issue 5): the plain functions the planner and the wave runner call.

``policies``: the crash-consistent target policy of each (vault, source policy), the Enhanced
app-consistent rollback policy of a VM that came from a Standard policy, and ``ensure_policy``
that creates or reuses them idempotently.
"""
