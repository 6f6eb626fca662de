"""Backup policy names: the target (crash-consistent clone) and rollback (Enhanced
app-consistent copy) names made from a source policy's name and the user's templates, and
Azure's validity rule for policy names. One definition for the rule engine (the assessment's
``target_policy`` column), the planner and the wave runner."""

from __future__ import annotations

import hashlib
import re
import string
from dataclasses import dataclass

from ..errors import SettingsError

DEFAULT_TARGET_TEMPLATE = "{source}-crash"
DEFAULT_ROLLBACK_TEMPLATE = "{source}-enh"
_ROLLBACK_SETTING = "rollback policy template"

# -- target policy names --------------------------------------------------------------------

# Azure's rule for Microsoft.RecoveryServices/vaults/backupPolicies names (MicrosoftDocs
# azure-docs articles/azure-resource-manager/management/resource-name-rules.md): 3-150
# characters, alphanumerics and hyphens, start with a letter, can't end with a hyphen; names
# compare case-insensitively. (Terraform's azurerm_backup_policy_vm also lets '_' and '!'
# through; we generate only what the documented rule allows.)
POLICY_NAME_MAX = 150
_POLICY_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{1,148}[A-Za-z0-9]$")
_LITERAL_OK = re.compile(r"^[A-Za-z0-9-]*$")
_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9-]+")
_HASH_LEN = 8
_MIN_SOURCE_ROOM = 1 + 1 + _HASH_LEN  # one letter, a hyphen and the hash


def valid_policy_name(name: str) -> bool:
    return bool(_POLICY_NAME.match(name))


@dataclass(frozen=True)
class TemplateShape:
    """What a valid target template looks like: fixed characters, ``{source}`` copies, and
    whether the name starts with the source (then the source must start with a letter)."""

    fixed: int
    copies: int
    leads_with_source: bool


def check_template(template: str) -> TemplateShape:
    """Validate ``rules.target_policy_template``: a SettingsError unless it can give a valid
    backup policy name that differs from the source policy's own name."""
    def bad(why: str) -> SettingsError:
        return SettingsError(f"invalid setting rules.target_policy_template = {template!r}: "
                             f"{why}; e.g. '{{source}}-crash'")
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise bad(f"not a valid template ({exc})") from None
    literals: list[str] = []
    copies = 0
    for literal, field_name, spec, conversion in parsed:
        literals.append(literal)
        if field_name is None:
            continue
        if field_name != "source":
            raise bad(f"the only field allowed is {{source}}, found {{{field_name}}}")
        if spec or conversion:
            raise bad("write {source} without a conversion or format spec")
        copies += 1
    if copies == 0:
        raise bad("it must contain {source}, or every policy would clone to the same name")
    fixed = "".join(literals)
    if copies == 1 and not fixed:
        raise bad("it gives the source policy's own name; add text such as '-crash'")
    if not _LITERAL_OK.match(fixed):
        raise bad("Azure backup policy names allow only letters, digits and hyphens")
    if literals[0] and not literals[0][0].isalpha():
        raise bad("a backup policy name must start with a letter")
    if parsed[-1][1] is None and literals[-1].endswith("-"):
        raise bad("a backup policy name can't end with a hyphen")
    room = POLICY_NAME_MAX - len(fixed)
    if room < copies * _MIN_SOURCE_ROOM:
        raise bad(f"its fixed text leaves {room} of the {POLICY_NAME_MAX} characters Azure "
                  "allows for the source name")
    return TemplateShape(fixed=len(fixed), copies=copies, leads_with_source=not literals[0])


def target_policy_name(source: str, template: str) -> str:
    """The crash-consistent clone's name for source policy ``source``: ``template`` with
    ``{source}`` filled in, always a valid backup policy name.

    Source names come from Azure, so they are normally used as they are. When a source has to
    change to fit (characters outside letters/digits/hyphens, a non-letter start, or too long
    for 150 characters with the template's text), it is cleaned/cut and given ``-`` plus 8 hex
    digits of its SHA-256, so two different sources never share a clone name. ``""`` stays
    ``""`` (no policy, no clone).
    """
    shape = check_template(template)
    if not source:
        return ""
    room = (POLICY_NAME_MAX - shape.fixed) // shape.copies
    name = template.format(source=source)
    if len(source) <= room and valid_policy_name(name):
        return name
    clean = _NOT_ALLOWED.sub("-", source).strip("-")
    if shape.leads_with_source:
        clean = clean.lstrip("-0123456789")
    digest = hashlib.sha256(source.encode("utf-8")).hexdigest()[:_HASH_LEN]
    head = clean[: room - 1 - _HASH_LEN].strip("-") or "policy"
    name = template.format(source=f"{head}-{digest}")
    if not valid_policy_name(name):  # pragma: no cover - check_template rules this out
        raise AssertionError(f"target policy name {name!r} from {source!r} is not valid")
    return name


# -- rollback names ----------------------------------------------------------------------------

def rollback_policy_name(source: str, template: str = DEFAULT_ROLLBACK_TEMPLATE, *,
                         target_template: str = DEFAULT_TARGET_TEMPLATE,
                         setting: str = _ROLLBACK_SETTING) -> str:
    """The Enhanced app-consistent rollback policy's name for Standard source ``source``: the
    same name rules as the target (``target_policy_name``), and never the target's own name
    (Azure compares policy names case-insensitively). ``setting`` names the template's setting
    in error messages."""
    try:
        name = target_policy_name(source, template)
    except SettingsError as exc:
        raise SettingsError(str(exc).replace("rules.target_policy_template", setting).replace(
            f"'{DEFAULT_TARGET_TEMPLATE}'", f"'{DEFAULT_ROLLBACK_TEMPLATE}'")) from None
    if name and name.lower() == target_policy_name(source, target_template).lower():
        raise SettingsError(
            f"invalid setting {setting} = {template!r}: for source policy {source!r} it gives "
            f"{name!r}, the crash-consistent target's own name (template {target_template!r}); "
            f"use a different text, e.g. '{DEFAULT_ROLLBACK_TEMPLATE}'")
    return name


__all__ = [
    "DEFAULT_ROLLBACK_TEMPLATE",
    "DEFAULT_TARGET_TEMPLATE",
    "POLICY_NAME_MAX",
    "TemplateShape",
    "check_template",
    "rollback_policy_name",
    "target_policy_name",
    "valid_policy_name",
]
