"""Migration waves: the wave runner and the per-VM steps (re-check, record, change, verify,
roll back). The policies a wave moves VMs to (names, bodies, create or reuse) live in
``tasks.policies``, shared with the planner and the rule engine.
"""
