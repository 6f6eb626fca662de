"""The wave planner: pure functions over the assessment's VM frame, one job per
module, plus the one read-only ARM call a plan needs (``vault_reader``).

``selection`` narrows (``--select``, ``--vms``); ``tasks.rules.eligibility`` decides who may move
and why not (re-exported here);
``waves`` orders and sizes; ``policy_needs`` works out each vault's clones (create, reuse,
conflict); ``limits`` keeps to the vault limits (200 policies, 50 writes a day); ``planner``
puts them together into a ``Plan``.
"""

from __future__ import annotations

from ..rules.eligibility import STANDARD_RULE, classify, normalize_rule_ids
from .limits import (
    MAX_POLICIES_PER_VAULT,
    MAX_POLICY_WRITES_PER_DAY,
    WRITE_WINDOW_HOURS,
    over_policy_limit,
    write_batches,
)
from .planner import (
    Plan,
    PlanOptions,
    build_plan,
    involved_vaults,
    not_before_text,
    nothing_qualifies,
)
from .policy_needs import VaultPolicies, resolve_groups
from .selection import (
    FILTER_KEYS,
    Filter,
    describe_filters,
    listed_mask,
    parse_filters,
    read_vm_ids,
    select_mask,
    tag_values,
)
from .vault_reader import read_vault_policies
from .waves import assign_waves, order_vms, resolve_ramp, reversible_canary, wave_sizes

__all__ = [
    "FILTER_KEYS",
    "MAX_POLICIES_PER_VAULT",
    "MAX_POLICY_WRITES_PER_DAY",
    "STANDARD_RULE",
    "WRITE_WINDOW_HOURS",
    "Filter",
    "Plan",
    "PlanOptions",
    "VaultPolicies",
    "assign_waves",
    "build_plan",
    "classify",
    "describe_filters",
    "involved_vaults",
    "listed_mask",
    "normalize_rule_ids",
    "not_before_text",
    "nothing_qualifies",
    "order_vms",
    "over_policy_limit",
    "parse_filters",
    "read_vault_policies",
    "read_vm_ids",
    "resolve_groups",
    "resolve_ramp",
    "reversible_canary",
    "select_mask",
    "tag_values",
    "wave_sizes",
    "write_batches",
]
