"""Supported-scenario rules: packs (``config/rules/*.yaml``), one check module per rule id
(``tasks/rules/checks/``), and the engine that scores readiness (``tasks/rules/engine.py``)."""

from tasks.rules.engine import (
    Rule,
    RuleContext,
    RulePack,
    evaluate,
    load_pack,
    score,
)

__all__ = ["Rule", "RuleContext", "RulePack", "evaluate", "load_pack", "score"]
