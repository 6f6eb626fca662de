"""Settings: one TOML file, ``CCMIGRATE_*`` environment variables and CLI flags, validated once.

Precedence: built-in defaults < TOML file < environment < flags. Each value remembers where it
came from, so a bad one is reported with its key, value, what is allowed and its source.
Nested keys in the environment use ``__``: ``CCMIGRATE_THROTTLES__MAX_PARALLEL=8``.
"""

from __future__ import annotations

import os
import re
import sys
import tomllib
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import SettingsError

CLOUDS = ("public", "usgov", "china")
CREDENTIALS = ("default", "cli", "managed-identity", "emulator")
SEVERITIES = ("blocker", "warning", "unknown", "info")
ENV_PREFIX = "CCMIGRATE_"
# Environment variables that are not settings keys.
ENV_IGNORED = {"CCMIGRATE_CONFIG"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class Scope(_Strict):
    """Which subscriptions to read. Empty lists mean every subscription the credential sees."""

    subscriptions: list[str] = Field(default_factory=list)
    management_groups: list[str] = Field(default_factory=list)
    exclude_subscriptions: list[str] = Field(default_factory=list)
    exclude_resource_groups: list[str] = Field(default_factory=list)
    exclude_tags: list[str] = Field(default_factory=list)

    @field_validator("subscriptions", "exclude_subscriptions")
    @classmethod
    def _guids(cls, values: list[str]) -> list[str]:
        import uuid

        out = []
        for value in values:
            try:
                out.append(str(uuid.UUID(value.strip())))
            except ValueError as exc:
                raise ValueError(f"{value!r} is not a subscription id (a GUID such as "
                                 "'00000000-0000-0000-0000-000000000000')") from exc
        return out

    @model_validator(mode="after")
    def _one_kind(self) -> Scope:
        if self.subscriptions and self.management_groups:
            raise ValueError("give subscriptions or management groups, not both")
        return self

    @field_validator("exclude_tags")
    @classmethod
    def _tags(cls, values: list[str]) -> list[str]:
        for value in values:
            if "=" not in value or not value.split("=", 1)[0].strip():
                raise ValueError(f"{value!r} is not a tag filter; write 'name=value' "
                                 "(or 'name=' for any value)")
        return values


class Rules(_Strict):
    pack: str = "ga-2025-07"
    disabled: list[str] = Field(default_factory=list)
    severity: dict[str, Literal["blocker", "warning", "unknown", "info"]] = Field(
        default_factory=dict)
    opt_out_tag: str = "backup-consistency=application"
    target_policy_template: str = "{source}-crash"


class Throttles(_Strict):
    """Limits we keep ourselves, below Azure's (api-notes section 5)."""

    arg_batch_size: int = Field(300, ge=1, le=1000)
    arg_page_size: int = Field(1000, ge=1, le=1000)
    arg_concurrency: int = Field(3, ge=1, le=15)
    # VMs a wave holds in flight (the wave engine, tasks/migration/engine.py: a count, not
    # threads). In flight per subscription adapts under these ceilings (concurrency.py) when
    # ``adaptive``; Microsoft publishes no per-vault concurrency figure (api-notes section 5),
    # so ``per_vault``'s default is ours, chosen by measurement (BENCHMARKS.md, "the per-vault
    # sweep"): a vault cap binds at cap / change duration, and a vault at ARM's 10 writes/s
    # under Azure's minutes-long changes needs over a thousand in flight, so by default a
    # vault may hold the whole wave's cap and the adaptive limit finds what Azure takes.
    max_parallel: int = Field(1000, ge=1, le=10_000)
    per_vault: int = Field(10_000, ge=1, le=10_000)  # unset: follows max_parallel down
    per_subscription: int | None = Field(None, ge=1, le=10_000)  # None: max_parallel
    adaptive: bool = True
    http_retries: int = Field(8, ge=0, le=30)
    http_backoff: float = Field(0.8, ge=0, le=60)
    http_max_backoff: float = Field(60, ge=0, le=600)
    polling_interval: float = Field(5, ge=0, le=120)
    operation_timeout: float = Field(1800, gt=0)
    # Client-side pacing under ARM's per-subscription buckets (tasks/azure/pacing.py); deletes
    # use the write numbers, as ARM's default delete bucket is the same size.
    arm_pacing: bool = True
    arm_reads_per_s: float = Field(25, gt=0, le=10_000)
    arm_read_burst: int = Field(250, ge=1, le=100_000)
    arm_writes_per_s: float = Field(10, gt=0, le=10_000)
    arm_write_burst: int = Field(200, ge=1, le=100_000)

    @model_validator(mode="after")
    def _vault_within_wave(self) -> Throttles:
        # A default above a smaller wave cap follows it down; one the user gave is refused.
        if "per_vault" not in self.model_fields_set:
            object.__setattr__(self, "per_vault", min(self.per_vault, self.max_parallel))
        if self.per_vault > self.max_parallel:
            raise ValueError(f"per_vault ({self.per_vault}) is above max_parallel "
                             f"({self.max_parallel}): a vault can never hold more VMs in flight "
                             "than the whole wave; lower per_vault (--per-vault) or raise "
                             "max_parallel (--max-parallel)")
        return self


_PERCENT = re.compile(r"^(\d+(?:\.\d+)?)\s*%$")
_RULE_ID = re.compile(r"^[A-Z][A-Z0-9_]*$")
_TAG_ORDER = re.compile(r"^tag:\s*(\S.*)$", re.IGNORECASE)


def count_or_percent(value: Any, *, minimum: int) -> int | str:
    """A VM count (an int >= ``minimum``) or a share written ``"N%"`` (0 < N <= 100), as the
    planner and the wave runner read it: ``5`` or ``"25%"``. Text digits become an int."""
    if isinstance(value, bool):
        raise ValueError("must be a whole number or a percentage such as '25%'")
    if isinstance(value, str):
        text = value.strip()
        match = _PERCENT.match(text)
        if match:
            share = float(match.group(1))
            if not 0 < share <= 100:
                raise ValueError(f"{text!r}: a percentage must be above 0% and at most 100%")
            return f"{share:g}%"
        if not text.isdigit():
            raise ValueError(f"{text!r} is neither a whole number nor a percentage such as "
                             "'25%'")
        value = int(text)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int):
        raise ValueError(f"{value!r} is neither a whole number nor a percentage such as '25%'")
    if value < minimum:
        raise ValueError(f"{value} is below the minimum of {minimum}")
    return value


class Waves(_Strict):
    """How ``ccmigrate plan`` cuts waves, and the thresholds the wave runner applies.

    Sizes: wave 1 is the canary (``canary`` VMs), then one wave per ``ramp`` step (a count, or
    ``"N%"`` of the plan's candidates), then waves of ``wave_size`` until every candidate is
    placed. ``allow_warnings`` lets ``ready_with_conditions`` VMs in when every warning they
    carry is listed; Standard-policy VMs need ``include_standard`` because their move to
    Enhanced can't be undone.
    """

    wave_size: int = Field(50, ge=1, le=100_000)
    canary: int = Field(1, ge=1, le=100_000)
    ramp: list[int | str] = Field(default_factory=lambda: [5])
    allow_warnings: list[str] = Field(default_factory=list)
    include_standard: bool = False
    # "" = subscription, vault, VM name; "tag:NAME" = that tag's value, lowest first.
    order_by: str = ""
    rollback_policy_template: str = "{source}-enh"
    # Read by the wave runner; validated here so a typo fails at start-up.
    max_failures: int | str = "10%"
    cumulative_max_failures: int | str = "5%"
    verify: Literal["job", "backup"] = "job"
    lease_ttl_s: int = Field(60, ge=5, le=3600)
    irreversible_timeout_s: int = Field(14_400, ge=60, le=7 * 24 * 3600)
    backup_timeout_s: int = Field(86_400, ge=60, le=7 * 24 * 3600)

    @field_validator("ramp", mode="before")
    @classmethod
    def _ramp_steps(cls, value: Any) -> list[int | str]:
        # "1,5,25%" from a flag or the environment, a TOML list, or one step.
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            items = [items]
        steps = [item for item in items if not (isinstance(item, str) and not item.strip())]
        return [count_or_percent(step, minimum=1) for step in steps]

    @field_validator("max_failures", "cumulative_max_failures", mode="before")
    @classmethod
    def _threshold(cls, value: Any) -> int | str:
        return count_or_percent(value, minimum=0)

    @field_validator("allow_warnings")
    @classmethod
    def _rule_ids(cls, values: list[str]) -> list[str]:
        out: list[str] = []
        for value in values:
            rule = value.strip().upper()
            if not _RULE_ID.match(rule):
                raise ValueError(f"{value!r} is not a rule id (such as HOST_CACHING_READWRITE)")
            if rule not in out:
                out.append(rule)
        return out

    @field_validator("order_by")
    @classmethod
    def _order(cls, value: str) -> str:
        text = value.strip()
        if not text:
            return ""
        match = _TAG_ORDER.match(text)
        if not match:
            raise ValueError("must be empty (by subscription, vault and VM name) or "
                             "'tag:NAME' (by that tag's value, lowest first)")
        return f"tag:{match.group(1).strip()}"

    @field_validator("rollback_policy_template")
    @classmethod
    def _rollback_template(cls, value: str) -> str:
        # The same name rules as the crash-consistent target's template (policies.naming).
        from .policies.naming import check_template

        try:
            check_template(value)
        except SettingsError as exc:
            why = str(exc).partition(f"= {value!r}: ")[2] or str(exc)
            raise ValueError(why.replace("-crash", "-enh")) from None
        return value


# The protected-instance prices a configured [pricing] table must give (RegionPrice may
# override the two prices per region).
PRICING_KEYS = ("currency", "small_instance", "per_500gb")


def _price() -> Any:
    return Field(None, ge=0, allow_inf_nan=False)


class RegionPrice(_Strict):
    """One region's protected-instance prices, where they differ from the table's."""

    small_instance: float | None = _price()
    per_500gb: float | None = _price()

    @model_validator(mode="after")
    def _not_empty(self) -> RegionPrice:
        if self.small_instance is None and self.per_500gb is None:
            raise ValueError("give small_instance, per_500gb or both, or leave the region out")
        return self


class Pricing(_Strict):
    """Azure Backup protected-instance (PI) prices the user copies from the pricing page, per
    month. We ship no prices: they change and differ by region, currency and agreement; without
    them the cost view shows PI units only.

    ``small_instance`` is the fee of an instance up to 50 GB; ``per_500gb`` the fee of one of
    50-500 GB and of each 500 GB above that. ``regions`` maps a region name (``westeurope``) to
    the prices that differ there.
    """

    currency: str | None = None
    small_instance: float | None = _price()
    per_500gb: float | None = _price()
    regions: dict[str, RegionPrice] = Field(default_factory=dict)

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str | None) -> str | None:
        if value is None:
            return None
        code = value.strip()
        if len(code) != 3 or not code.isascii() or not code.isalpha():
            raise ValueError("must be the three-letter code of the prices' currency, such as "
                             "USD or EUR")
        return code.upper()

    @field_validator("regions")
    @classmethod
    def _region_names(cls, value: dict[str, RegionPrice]) -> dict[str, RegionPrice]:
        # Resource Graph gives locations lower-case without spaces ("West Europe" -> westeurope).
        out: dict[str, RegionPrice] = {}
        for name, price in value.items():
            key = name.replace(" ", "").lower()
            if not key:
                raise ValueError("a region name is empty")
            if key in out:
                raise ValueError(f"region {key!r} is given twice ({name!r})")
            out[key] = price
        return out

    @model_validator(mode="after")
    def _all_or_none(self) -> Pricing:
        given = [k for k in PRICING_KEYS if getattr(self, k) is not None]
        if (given or self.regions) and len(given) < len(PRICING_KEYS):
            missing = [k for k in PRICING_KEYS if getattr(self, k) is None]
            raise ValueError(f"lacks {', '.join(missing)}; set currency, small_instance and "
                             "per_500gb together (monthly prices per protected instance, from "
                             "the Azure Backup pricing page), or none of them to see PI units "
                             "only")
        return self

    @property
    def configured(self) -> bool:
        """Prices are there to turn PI units into money."""
        return all(getattr(self, k) is not None for k in PRICING_KEYS)


class Settings(_Strict):
    cloud: str = "public"
    endpoint: str | None = None
    credential: Literal["default", "cli", "managed-identity", "emulator"] = "default"
    ca_bundle: Path | None = None
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None  # masked wherever settings are logged or stored
    authority: str | None = None
    state_store: str | None = None
    output_dir: Path = Path("out")
    scope: Scope = Field(default_factory=Scope)
    rules: Rules = Field(default_factory=Rules)
    throttles: Throttles = Field(default_factory=Throttles)
    pricing: Pricing = Field(default_factory=Pricing)
    waves: Waves = Field(default_factory=Waves)

    @field_validator("cloud")
    @classmethod
    def _cloud(cls, value: str) -> str:
        lowered = value.strip().lower()
        if lowered in CLOUDS:
            return lowered
        if lowered.startswith("https://"):
            return value.strip().rstrip("/")
        raise ValueError(f"must be one of {', '.join(CLOUDS)} or an https:// ARM endpoint")

    @field_validator("endpoint", "authority")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith("https://"):
            raise ValueError("must be an https:// URL (Azure SDKs send tokens only over TLS)")
        return value.rstrip("/")

    @field_validator("ca_bundle")
    @classmethod
    def _ca(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError("no such file; give the PEM file of the CA that signed the "
                             "endpoint's certificate")
        return value

    def state_store_url(self) -> str:
        if self.state_store:
            return self.state_store
        return f"sqlite:///{default_data_dir() / 'state.db'}"


def default_data_dir() -> Path:
    """Per-user data folder (XDG on Linux/macOS, LOCALAPPDATA on Windows)."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    else:
        base = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return base / "ccmigrate"


# -- loading --------------------------------------------------------------------------------

class _Layers:
    """Merged nested dict plus the source of every leaf key."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.origin: dict[tuple[str, ...], str] = {}
        self.tables: dict[tuple[str, ...], str] = {}  # tables given empty, e.g. [pricing]

    def add(self, values: dict[str, Any], source: str, prefix: tuple[str, ...] = ()) -> None:
        target = self.data
        for part in prefix:
            target = target.setdefault(part, {})
        for key, value in values.items():
            path = (*prefix, key)
            if isinstance(value, dict) and key not in ("severity",):
                if not isinstance(target.get(key, {}), dict):
                    target[key] = {}
                if not value:  # an empty table still names where it came from
                    self.tables[path] = source
                self.add(value, source, path)
            else:
                target[key] = value
                self.origin[path] = source

    def source_of(self, loc: tuple[str | int, ...]) -> str:
        """Where the value at ``loc`` came from: its own or an enclosing key's source, else (a
        table checked as a whole, such as ``pricing``) the sources of the keys inside it."""
        parts = tuple(str(p) for p in loc)
        for end in range(len(parts), 0, -1):
            if parts[:end] in self.origin:
                return self.origin[parts[:end]]
        inside = sorted({source for path, source in self.origin.items()
                         if parts and path[:len(parts)] == parts})
        if inside:
            return " and ".join(inside)
        for end in range(len(parts), 0, -1):
            if parts[:end] in self.tables:
                return self.tables[parts[:end]]
        return "the built-in defaults"


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise SettingsError(f"settings file {path} does not exist; pass an existing file with "
                            "--config (see config/ccmigrate.example.toml)") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"settings file {path} is not valid TOML: {exc}") from exc


def _from_env(environ: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name in ENV_IGNORED:
            continue
        path = name[len(ENV_PREFIX):].lower().split("__")
        target = out
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = _env_value(value)
    return out


def _env_value(value: str) -> Any:
    """Lists in the environment are comma-separated; everything else is a string."""
    if "," in value and not value.startswith("http"):
        return [v.strip() for v in value.split(",") if v.strip()]
    return value


_LIST_KEYS = ({("scope", k) for k in Scope.model_fields} | {("rules", "disabled")}
              | {("waves", "allow_warnings")})


def _env_leaves(values: dict[str, Any], prefix: tuple[str, ...] = ()):
    """(key path, value) of every environment setting; a severity table is one value."""
    for key, value in values.items():
        path = (*prefix, key)
        if isinstance(value, dict) and key != "severity":
            yield from _env_leaves(value, path)
        else:
            yield path, value


def _normalise_lists(data: dict[str, Any], prefix: tuple[str, ...] = ()) -> None:
    for key, value in list(data.items()):
        if isinstance(value, dict) and key != "severity":
            _normalise_lists(value, (*prefix, key))
        elif (*prefix, key) in _LIST_KEYS and isinstance(value, str):
            data[key] = [v.strip() for v in value.split(",") if v.strip()]


def load_settings(config: str | Path | None = None, *, flags: dict[str, Any] | None = None,
                  environ: dict[str, str] | None = None) -> Settings:
    """Build validated settings; raise ``SettingsError`` naming key, value, allowed and source."""
    env = dict(os.environ if environ is None else environ)
    layers = _Layers()
    config_path = config or env.get("CCMIGRATE_CONFIG")
    if config_path:
        path = Path(config_path).expanduser()
        source = f"settings file {path}"
        layers.add(_read_toml(path), source)
    for path, value in _env_leaves(_from_env(env)):
        nested: Any = value
        for part in reversed(path):
            nested = {part: nested}
        # Each value names its own variable, however deep: CCMIGRATE_PRICING__REGIONS__X__...
        layers.add(nested, f"environment variable {ENV_PREFIX}{'__'.join(path).upper()}")
    for key, value in (flags or {}).items():
        if value is None or value == [] or value == ():
            continue
        path = key.split(".")
        nested = list(value) if isinstance(value, tuple) else value
        for part in reversed(path[1:]):
            nested = {part: nested}
        layers.add({path[0]: nested}, f"command-line option --{path[-1].replace('_', '-')}")
    _normalise_lists(layers.data)
    try:
        return Settings.model_validate(layers.data)
    except ValidationError as exc:
        raise SettingsError(_explain(exc, layers)) from None


def _explain(exc: ValidationError, layers: _Layers) -> str:
    err = exc.errors()[0]
    loc = tuple(err["loc"])
    key = ".".join(str(p) for p in loc)
    source = layers.source_of(loc)
    if err["type"] == "extra_forbidden":
        allowed = ", ".join(sorted(_model_at(loc[:-1]).model_fields))
        return (f"unknown setting '{key}' in {source}; known keys here: {allowed} "
                "(see config/ccmigrate.example.toml)")
    value = err.get("input")
    message = err["msg"].removeprefix("Value error, ")
    if message.startswith("Input should be "):
        message = "must be " + message.removeprefix("Input should be ")
    return f"invalid setting {key} = {value!r} in {source}: {message}"


def _model_at(loc: tuple[str | int, ...]) -> type[BaseModel]:
    """The settings model holding the keys at ``loc``, stepping over the names of mapping
    entries (``pricing.regions.<region>`` is a RegionPrice)."""
    model: type[BaseModel] = Settings
    parts = [str(p) for p in loc]
    while parts:
        field = model.model_fields.get(parts.pop(0))
        if field is None:
            break
        annotation = field.annotation
        if get_origin(annotation) is dict and parts:
            annotation = get_args(annotation)[1]
            parts.pop(0)  # the entry's own name
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            break
        model = annotation
    return model
