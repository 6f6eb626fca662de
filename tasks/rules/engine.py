"""The rule engine: load a rule pack, apply the user's overrides, evaluate, score readiness.

A rule is data plus a small predicate: its metadata (severity, title, rationale, remediation,
doc link, params) lives in a YAML pack under ``config/rules/``, its predicate in
``tasks/rules/checks/<rule_id_lower>.py``. Readiness follows ``supported-scenarios.md``: first
match wins, with the *effective* severities (after the user's overrides).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from tasks.errors import InputError, SettingsError
from tasks.inventory import schema
from tasks.policies.naming import check_template, target_policy_name
from tasks.rules.checks import CHECKS
from tasks.rules.predicates import (
    VM_ROW,
    active_item,
    equals_any,
    factorized_once,
    vm_rows,
)

PACK_DIR = Path(__file__).resolve().parents[2] / "config" / "rules"
SEVERITIES = ("blocker", "warning", "unknown", "info")
CATEGORIES = ("policy", "region", "size", "disk", "security", "workload", "protection",
              "governance")
PACK_FIELDS = ("name", "doc_version", "description", "rules")
RULE_FIELDS = ("id", "severity", "category", "title", "rationale", "remediation", "doc_link")
OPTIONAL_PACK_FIELDS = ("sources", "billing")
BILLING_FRACTIONS = ("pi_basis_fraction", "pi_fee_fraction")
BILLING_FIELDS = (*BILLING_FRACTIONS, "note")
OPTIONAL_RULE_FIELDS = ("params",)

CRASH_CONSISTENT = "OnlyCrashConsistent"
MOVING_READINESS = ("ready", "ready_with_conditions")


@dataclass(frozen=True)
class RuleContext:
    """Facts the checks need that are not in the inventory: the settings' view of the world.

    ``cloud`` is the settings' cloud (``public``, ``usgov``, ``china`` or a custom ARM URL);
    ``--endpoint`` never changes it. ``opt_out_tag`` is ``(name, value)``; both match
    case-insensitively and an empty value matches any value (``"name="``).
    """

    cloud: str = "public"
    opt_out_tag: tuple[str, str] = ("backup-consistency", "application")

    @classmethod
    def from_settings(cls, settings: Any) -> RuleContext:
        """Build from ``tasks.settings.Settings`` (cloud and ``rules.opt_out_tag``)."""
        return cls(cloud=settings.cloud, opt_out_tag=parse_opt_out_tag(settings.rules.opt_out_tag))


def parse_opt_out_tag(value: str) -> tuple[str, str]:
    """``"name=value"`` -> ``(name, value)``; ``"name="`` matches the tag with any value."""
    name, sep, tag_value = str(value).partition("=")
    if not sep or not name.strip():
        raise SettingsError(f"invalid setting rules.opt_out_tag = {value!r}: write 'name=value' "
                            "(e.g. 'backup-consistency=application'), or 'name=' to match the "
                            "tag with any value")
    return name.strip(), tag_value.strip()


@dataclass
class Rule:
    id: str
    severity: str
    category: str
    title: str
    rationale: str
    remediation: str
    doc_link: str
    params: dict[str, Any]
    enabled: bool = True
    default_severity: str = ""  # the pack's severity, before the user's override

    def __post_init__(self) -> None:
        if not self.default_severity:
            self.default_severity = self.severity


@dataclass(frozen=True)
class Billing:
    """How Azure Backup bills a crash-consistent VM under this pack's texts.

    The protected-instance (PI) size tier is found on ``provisioned size x pi_basis_fraction``
    (GA: the used size, counted as 50% of provisioned), and the PI fee is multiplied by
    ``pi_fee_fraction`` (preview: 0.5 PI). Both are 1.0 when the pack says nothing: a normal PI
    on the VM's size.
    """

    pi_basis_fraction: float = 1.0
    pi_fee_fraction: float = 1.0
    note: str = ""


@dataclass
class RulePack:
    name: str
    doc_version: str
    description: str
    rules: list[Rule]
    overrides: list[dict[str, str]] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)  # Microsoft texts the pack follows
    path: Path | None = None
    billing: Billing = field(default_factory=Billing)

    def enabled(self) -> list[Rule]:
        return [r for r in self.rules if r.enabled]

    def rule(self, rule_id: str) -> Rule:
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(rule_id)

    def ids(self) -> list[str]:
        return [r.id for r in self.rules]


# -- loading --------------------------------------------------------------------------------

def available_packs() -> list[str]:
    return sorted(p.stem for p in PACK_DIR.glob("*.yaml"))


def pack_path(pack: str) -> Path:
    """A pack name (``ga-2025-07``) means ``config/rules/<name>.yaml``; a value ending in
    ``.yaml``/``.yml`` or holding a path separator is a file path."""
    if pack.endswith((".yaml", ".yml")) or "/" in pack or "\\" in pack:
        path = Path(pack).expanduser()
        if not path.is_file():
            raise SettingsError(f"invalid setting rules.pack = {pack!r}: no such file; give a "
                                f"pack name ({', '.join(available_packs())}) or an existing "
                                ".yaml file")
        return path
    path = PACK_DIR / f"{pack}.yaml"
    if not path.is_file():
        raise SettingsError(f"invalid setting rules.pack = {pack!r}: no such rule pack; use one "
                            f"of {', '.join(available_packs())} or a path to a .yaml file")
    return path


def read_pack(path: Path) -> RulePack:
    """Parse and validate one pack file; every problem names the file, the rule and the field."""
    where = f"rule pack {path}"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InputError(f"{where} is not valid YAML: {exc}") from None
    except OSError as exc:
        raise InputError(f"{where} cannot be read: {exc.strerror}") from None
    if not isinstance(data, dict):
        raise InputError(f"{where} must be a mapping with keys {', '.join(PACK_FIELDS)}")
    for key in PACK_FIELDS:
        if key not in data or data[key] in (None, "", []):
            raise InputError(f"{where} lacks the field '{key}'; a pack needs "
                             f"{', '.join(PACK_FIELDS)}")
    extra = sorted(set(data) - set(PACK_FIELDS) - set(OPTIONAL_PACK_FIELDS))
    if extra:
        raise InputError(f"{where} has unknown field(s) {', '.join(extra)}; allowed: "
                         f"{', '.join(PACK_FIELDS + OPTIONAL_PACK_FIELDS)}")
    for key in ("name", "doc_version", "description"):
        if not isinstance(data[key], str):
            raise InputError(f"{where}: field '{key}' must be a string")
    if not isinstance(data["rules"], list):
        raise InputError(f"{where}: field 'rules' must be a list of rules")
    sources = data.get("sources") or []
    if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
        raise InputError(f"{where}: field 'sources' must be a list of strings")
    billing = _read_billing(data.get("billing"), where)
    rules: list[Rule] = []
    seen: set[str] = set()
    for number, raw in enumerate(data["rules"], start=1):
        rule = _read_rule(raw, f"{where}, rule #{number}")
        if rule.id in seen:
            raise InputError(f"{where}, rule {rule.id}: the id appears twice; keep one entry")
        seen.add(rule.id)
        rules.append(rule)
    return RulePack(name=data["name"], doc_version=data["doc_version"],
                    description=data["description"].strip(), rules=rules, sources=sources,
                    path=path, billing=billing)


def _read_billing(raw: Any, where: str) -> Billing:
    """The optional ``billing`` mapping: fractions in (0, 1], a note naming the text."""
    if raw is None:
        return Billing()
    if not isinstance(raw, dict):
        raise InputError(f"{where}: field 'billing' must be a mapping with "
                         f"{', '.join(BILLING_FIELDS)}")
    extra = sorted(set(raw) - set(BILLING_FIELDS))
    if extra:
        raise InputError(f"{where}: field 'billing' has unknown field(s) {', '.join(extra)}; "
                         f"allowed: {', '.join(BILLING_FIELDS)}")
    values: dict[str, float] = {}
    for key in BILLING_FRACTIONS:
        value = raw.get(key, 1.0)
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not 0 < value <= 1:
            raise InputError(f"{where}: billing.{key} is {value!r}; use a number greater than "
                             "0 and at most 1 (1.0: the full size or fee)")
        values[key] = float(value)
    note = raw.get("note", "")
    if not isinstance(note, str):
        raise InputError(f"{where}: billing.note must be a string")
    return Billing(note=" ".join(note.split()), **values)


def _read_rule(raw: Any, where: str) -> Rule:
    if not isinstance(raw, dict):
        raise InputError(f"{where} must be a mapping with {', '.join(RULE_FIELDS)}")
    rule_id = raw.get("id")
    if not isinstance(rule_id, str) or not rule_id:
        raise InputError(f"{where} lacks the field 'id'")
    if rule_id not in CHECKS:
        raise InputError(f"{where}: unknown rule id '{rule_id}'; known ids: "
                         f"{', '.join(sorted(CHECKS))}")
    where = f"{where.rsplit(', rule #', 1)[0]}, rule {rule_id}"
    for key in RULE_FIELDS:
        value = raw.get(key)
        if not isinstance(value, str) or not value.strip():
            raise InputError(f"{where} lacks the field '{key}' (a non-empty string)")
    extra = sorted(set(raw) - set(RULE_FIELDS) - set(OPTIONAL_RULE_FIELDS))
    if extra:
        raise InputError(f"{where} has unknown field(s) {', '.join(extra)}; allowed: "
                         f"{', '.join(RULE_FIELDS + OPTIONAL_RULE_FIELDS)}")
    if raw["severity"] not in SEVERITIES:
        raise InputError(f"{where}: field 'severity' is {raw['severity']!r}; use one of "
                         f"{', '.join(SEVERITIES)}")
    if raw["category"] not in CATEGORIES:
        raise InputError(f"{where}: field 'category' is {raw['category']!r}; use one of "
                         f"{', '.join(CATEGORIES)}")
    if not raw["doc_link"].startswith("https://"):
        raise InputError(f"{where}: field 'doc_link' must be an https:// URL")
    params = raw.get("params") or {}
    if not isinstance(params, dict):
        raise InputError(f"{where}: field 'params' must be a mapping")
    for name, kind in CHECKS[rule_id].params.items():
        if name not in params:
            raise InputError(f"{where}: field 'params' lacks '{name}' ({kind.__name__})")
        if not isinstance(params[name], kind):
            raise InputError(f"{where}: params.{name} must be of type {kind.__name__}, "
                             f"not {type(params[name]).__name__}")
    return Rule(id=rule_id, severity=raw["severity"], category=raw["category"],
                title=raw["title"].strip(), rationale=raw["rationale"].strip(),
                remediation=raw["remediation"].strip(), doc_link=raw["doc_link"].strip(),
                params=params)


def load_pack(rules: Any) -> RulePack:
    """The pack ``settings.rules`` names, with its severity overrides and disabled ids applied.

    Ids in ``rules.severity`` and ``rules.disabled`` are matched case-insensitively; an id the
    pack lacks is a ``SettingsError`` naming it (and saying so when it is in another pack).
    """
    pack = read_pack(pack_path(rules.pack))
    severity = {str(k).strip().upper(): v for k, v in dict(rules.severity).items()}
    disabled = [str(d).strip().upper() for d in rules.disabled]
    _check_ids(pack, "rules.severity", list(severity))
    _check_ids(pack, "rules.disabled", disabled)
    for rule_id, new in severity.items():
        if new not in SEVERITIES:
            raise SettingsError(f"invalid setting rules.severity.{rule_id} = {new!r}: use one "
                                f"of {', '.join(SEVERITIES)}")
    for rule in pack.rules:
        new = severity.get(rule.id)
        if new is not None and new != rule.severity:
            pack.overrides.append({"rule": rule.id,
                                   "change": f"severity {rule.severity} -> {new}"})
            rule.severity = new
        if rule.id in disabled:
            rule.enabled = False
            pack.overrides.append({"rule": rule.id, "change": "disabled"})
    return pack


def _check_ids(pack: RulePack, key: str, ids: list[str]) -> None:
    unknown = [i for i in ids if i not in pack.ids()]
    if not unknown:
        return
    elsewhere = [i for i in unknown if i in CHECKS]
    hint = (f" ({', '.join(elsewhere)} exist(s) but not in this pack: pick another pack or "
            "drop the override)") if elsewhere else ""
    raise SettingsError(f"invalid setting {key}: rule id(s) {', '.join(unknown)} not in rule "
                        f"pack {pack.name}{hint}; its ids: {', '.join(pack.ids())}")


# -- evaluation -----------------------------------------------------------------------------

def evaluate(vms: pd.DataFrame, disks: pd.DataFrame, pack: RulePack,
             ctx: RuleContext) -> pd.DataFrame:
    """A boolean frame: index ``vms.index``, one column per enabled rule id (pack order)."""
    return _evaluate(schema.conform(vms, schema.VM_COLUMNS), disks, pack, ctx)


def _evaluate(vms: pd.DataFrame, disks: pd.DataFrame, pack: RulePack,
              ctx: RuleContext) -> pd.DataFrame:
    disks = schema.conform(disks, schema.DISK_COLUMNS)
    disks[VM_ROW] = vm_rows(vms, disks)  # the disk -> VM join, done once for every disk rule
    columns: dict[str, np.ndarray] = {}
    with factorized_once():  # several checks read the same columns
        for rule in pack.enabled():
            fired = CHECKS[rule.id].check(vms, disks, rule.params, ctx)
            if not isinstance(fired, pd.Series) or not fired.index.equals(vms.index):
                raise RuntimeError(f"check {rule.id} must return a Series on vms.index")
            columns[rule.id] = fired.astype("boolean").fillna(False).to_numpy(bool)
    return pd.DataFrame(columns, index=vms.index, columns=[r.id for r in pack.enabled()],
                        dtype=bool)


def score(vms: pd.DataFrame, disks: pd.DataFrame, pack: RulePack, ctx: RuleContext,
          target_template: str = "{source}-crash") -> pd.DataFrame:
    """``vms`` plus readiness, blockers, warnings, unknowns, infos and target_policy.

    Findings are listed for every VM, protected or not; readiness is the first match of
    supported-scenarios.md with the effective severities. ``target_policy`` is filled only for
    ``ready`` and ``ready_with_conditions`` VMs (the ones a wave would move); others get ``""``.
    """
    check_template(target_template)
    vms = schema.conform(vms, schema.VM_COLUMNS)
    fired = _evaluate(vms, disks, pack, ctx)
    matrix = fired.to_numpy(bool)
    ids = list(fired.columns)
    severity = [pack.rule(i).severity for i in ids]
    out = vms  # conform returned a copy
    any_of: dict[str, np.ndarray] = {}
    for level, column in (("blocker", "blockers"), ("warning", "warnings"),
                          ("unknown", "unknowns"), ("info", "infos")):
        picks = [n for n, s in enumerate(severity) if s == level]
        out[column] = _joined(matrix[:, picks], [ids[n] for n in picks])
        any_of[level] = matrix[:, picks].any(axis=1)
    conditions = [
        ~active_item(vms).to_numpy(bool),
        equals_any(vms["consistency_type"], [CRASH_CONSISTENT]).to_numpy(bool),
        any_of["blocker"], any_of["unknown"], any_of["warning"],
    ]
    choices = ["not_protected", "already_crash_consistent", "not_ready", "unknown",
               "ready_with_conditions"]
    # Object choices: each row holds one of six shared strings, not a string of its own.
    out["readiness"] = np.select(conditions, [np.array(c, dtype=object) for c in choices],
                                 default=np.array("ready", dtype=object))
    out["target_policy"] = _targets(vms["policy_name"], out["readiness"], target_template)
    return schema.conform(out, {**schema.VM_COLUMNS, **schema.SCORED_COLUMNS})


_CODE_BITS = 63


def _joined(matrix: np.ndarray, ids: list[str]) -> np.ndarray:
    """Row-wise ``";".join`` of the ids whose column is True, without a per-row loop: each row's
    fired set becomes an integer code, and only the distinct codes (a few dozen) are joined."""
    rows = matrix.shape[0]
    if not ids:
        return np.full(rows, "", dtype=object)
    if len(ids) > _CODE_BITS:  # more rules of one severity than bits in a code: join chunks
        head = _joined(matrix[:, :_CODE_BITS], ids[:_CODE_BITS])
        tail = _joined(matrix[:, _CODE_BITS:], ids[_CODE_BITS:])
        both = np.where((head != "") & (tail != ""), head + ";" + tail, head + tail)
        return both.astype(object)
    weights = np.left_shift(np.uint64(1), np.arange(len(ids), dtype=np.uint64))
    codes = (matrix.astype(np.uint64) * weights).sum(axis=1, dtype=np.uint64)
    distinct, inverse = np.unique(codes, return_inverse=True)
    labels = np.array([";".join(ids[n] for n in range(len(ids)) if int(c) >> n & 1)
                       for c in distinct], dtype=object)
    return labels[inverse.reshape(-1)]


def _targets(policy_names: pd.Series, readiness: pd.Series, template: str) -> pd.Series:
    names = policy_names.astype("string").fillna("")
    moving = readiness.isin(MOVING_READINESS) & names.ne("")
    mapping = {n: target_policy_name(n, template) for n in names[moving].unique()}
    return names.map(mapping).where(moving, "").fillna("").astype("string")


__all__ = [
    "Billing",
    "Rule",
    "RuleContext",
    "RulePack",
    "active_item",
    "available_packs",
    "evaluate",
    "load_pack",
    "parse_opt_out_tag",
    "read_pack",
    "score",
]

