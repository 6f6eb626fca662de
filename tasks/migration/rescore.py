"""Re-score a chunk of VMs right before their backups move, with the assessment's own rule
engine, on what Azure says *now*. A plan may be days old; since then a VM may have been resized
to a size without Premium storage, a disk made shared or switched to Entra data access, a tag
added.

The rows come from Resource Graph through the assessment's own queries (``look.py``); they go
through ``build_inventory`` and ``engine.score`` like any assessment's, so a rule has one
definition whether it runs over 100k VMs or a chunk. Whether a VM may still move is the
planner's own test (``rules.eligibility.classify``) with the plan's allowed warnings, plus the
warnings the plan already accepted for that VM. The source policies and the regions' VM sizes
are read from ARM once per run (``Rescorer``'s caches). Scope exclusions by subscription are
not re-applied (the plan chose the subscription).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..azure import backup
from ..discovery.policies import policy_facts
from ..discovery.skus import list_sizes, sku_frame
from ..errors import AzureError
from ..inventory.build import build_inventory
from ..rules.eligibility import STANDARD_RULE, classify
from ..rules.engine import RuleContext, RulePack, score

SQL_RULE = "WORKLOAD_DATABASE"
Reader = Callable[[Callable[[], Any]], Any]


def _direct(call: Callable[[], Any]) -> Any:
    return call()


def ids(text: Any) -> list[str]:
    """Rule ids of a ``;``-joined column."""
    return [r for r in str(text or "").split(";") if r]


@dataclass(frozen=True)
class Moving:
    """What the plan says of one VM about to move: the warnings it accepted, and whether its
    move is the irreversible Standard to Enhanced one (then the Standard rule is expected)."""

    vm_key: str
    planned_warnings: str = ""
    irreversible: bool = False


@dataclass
class Judge:
    """The CPU half: rows in, verdicts out, with the rules, settings and the plan's accepted
    warnings."""

    settings: Any
    pack: RulePack
    allow_warnings: tuple[str, ...] = ()
    include_standard: bool = False

    def scored(self, rows: dict[str, list[dict]], policies: dict[str, dict],
               sku_rows: list[tuple]) -> pd.DataFrame:
        """The VMs of ``rows`` scored now, one row each by ``vm_key`` (a VM the settings now
        exclude is missing)."""
        inventory = build_inventory(rows, policies, sku_frame(sku_rows), self.settings)
        scored = score(inventory.vms, inventory.disks, self.pack,
                       RuleContext.from_settings(self.settings),
                       self.settings.rules.target_policy_template)
        return scored.set_index("vm_key", drop=False)

    def verdicts(self, rows: dict[str, list[dict]], policies: dict[str, dict],
                 sku_rows: list[tuple], vms: list[Moving]) -> dict[str, tuple[str, str] | None]:
        """Per VM: ``(code, reason)`` when it may no longer move, else None."""
        now = self.scored(rows, policies, sku_rows)
        verdicts: dict[str, tuple[str, str] | None] = {}
        groups: dict[tuple[frozenset, bool], list[str]] = {}
        for one in vms:
            allowed = frozenset({*self.allow_warnings, *ids(one.planned_warnings)})
            groups.setdefault((allowed, one.irreversible), []).append(one.vm_key)
        for (allowed, irreversible), keys in groups.items():
            present = [k for k in keys if k in now.index]
            verdicts.update({k: ("EXCLUDED", "the settings' exclusions (resource group or "
                                 "tag) now cover it") for k in keys if k not in now.index})
            part = now.loc[present]
            judged = classify(part, allowed, self.include_standard or irreversible)
            for key, row, verdict in zip(present, part.itertuples(), judged.itertuples(),
                                         strict=True):
                verdicts[key] = None if verdict.candidate else _why(row, verdict.reason,
                                                                    irreversible)
        return verdicts


class Rescorer:
    """The judge, and what it needs from ARM beyond Resource Graph's rows: source policies and
    the regions' VM sizes, each read once per run (thread-safe caches)."""

    def __init__(self, access: Any, settings: Any, pack: RulePack, *,
                 allow_warnings: tuple[str, ...] = (), include_standard: bool = False) -> None:
        self.access = access
        self.judge = Judge(settings, pack, tuple(allow_warnings), include_standard)
        self._sizes: dict[tuple[str, str], dict[str, list[tuple]]] = {}
        self._policies: dict[str, dict | None] = {}
        self._locks: dict[Any, threading.Lock] = {}
        self._guard = threading.Lock()

    def _once(self, cache: dict, key: Any, load: Callable[[], Any]) -> Any:
        """``cache[key]``, loaded by the first thread that needs it while the others wait."""
        if key in cache:
            return cache[key]
        with self._guard:
            lock = self._locks.setdefault((id(cache), key), threading.Lock())
        with lock:
            if key not in cache:
                cache[key] = load()
            return cache[key]

    def size_rows(self, subscription_id: str, location: str, size: str,
                  read: Reader = _direct) -> list[tuple]:
        """The region's SKU row for ``size`` (read once per region and run)."""
        def load() -> dict[str, list[tuple]]:
            by_size: dict[str, list[tuple]] = {}
            for row in read(lambda: list_sizes(self.access, *pair)):
                by_size.setdefault(row[2], []).append(row)
            return by_size

        pair = (subscription_id.lower(), location.lower())
        return self._once(self._sizes, pair, load).get(size.lower(), [])

    def policy(self, policy_id: str, vault_id: str, read: Reader = _direct) -> dict[str, dict]:
        """The source policy's facts; none when it is gone (the rules then say the VM's
        protection data is unreadable, as the assessment would)."""
        def load() -> dict | None:
            ref = backup.vault_ref(vault_id)
            name = policy_id.rstrip("/").rsplit("/", 1)[-1]
            client = self.access.backup(ref.subscription_id)
            try:
                return policy_facts(read(lambda: backup.get_policy(client, ref, name)))
            except AzureError as err:
                if err.status == 404:
                    return None
                raise

        facts = self._once(self._policies, policy_id.lower(), load)
        return {policy_id.lower(): facts} if facts is not None else {}


def _why(row: Any, reason: str, irreversible: bool) -> tuple[str, str]:
    fired = [r for col in (row.blockers, row.unknowns, row.warnings) for r in ids(col)
             if r != STANDARD_RULE or not irreversible]
    found = f" ({', '.join(fired)})" if fired else ""
    return "NO_LONGER_READY", f"re-scored now, it is {row.readiness}{found}: {reason}"
