"""What an SDK model knows: walk a JSON body alongside the model class and name every key the
model has no field for (``unknown_keys``).

Two model styles are walked, so the check does not care how a package was generated:

- TypeSpec "hybrid" models (azure-mgmt-compute 39, azure-mgmt-recoveryservices 4,
  azure-mgmt-recoveryservicesbackup 11, azure-mgmt-resource-subscriptions 1): fields are
  ``rest_field``/``rest_discriminator`` descriptors (``_RestField``) in the class bodies, each with
  its wire name (``_rest_name_input``, else the attribute name) and a type annotation naming the
  nested model (``Optional["_models.X"]``, ``list[...]``, ``dict[str, ...]``). The generated
  ``Model.__new__`` collects the same descriptors over the MRO into ``_attr_to_rest_field``
  (``_utils/model_base.py``); we read the class bodies directly so no instance is needed.
  Polymorphic bases carry ``__mapping__`` (discriminator value -> subclass, filled by
  ``__init_subclass__``) and a discriminator field (``_is_discriminator``).
- msrest models (azure-mgmt-resourcegraph 8, older compute releases): ``_attribute_map``
  (attribute -> ``{"key": "properties.x", "type": "[Model]"}``, dots meaning flattened
  ``properties``) and ``_subtype_map`` (attribute -> {value: class name}).

Discriminators are resolved through the WHOLE subclass tree, not only the first level the SDK's
own ``_deserialize`` looks at: in recoveryservicesbackup 11.2 ``ProtectedItem.__mapping__`` is
keyed by class names (``AzureIaaSVMProtectedItem``), so an Azure VM item
(``protectedItemType: Microsoft.Compute/virtualMachines``) deserialises to the base
``ProtectedItem``; its model is ``AzureIaaSComputeVMProtectedItem``, registered one level down in
``AzureIaaSVMProtectedItem.__mapping__``. Checking against the base would report every VM field.
"""

from __future__ import annotations

import collections.abc
import importlib
import re
import sys
import types
import typing
from functools import cache
from typing import Any, Literal, NamedTuple, Union, get_args, get_origin

# A field's type as the walker needs it: ("model", cls), ("list", inner), ("dict", inner),
# ("any",) for free-form values, ("scalar",) for everything else.
Shape = tuple[Any, ...]
ANY: Shape = ("any",)
SCALAR: Shape = ("scalar",)


class Unknown(NamedTuple):
    """One key a model does not know: where it was, and which model class lacked it."""

    path: str  # JSON path, e.g. ``$.properties.storageProfile.osDisk.foo``
    owner: str  # the (discriminator-resolved) model class the object was walked as
    key: str  # the key itself; for a discriminator value no class knows: ``<objectType=X>``


def unknown_keys(model: type, value: Any, path: str = "$") -> list[Unknown]:
    """Every key in ``value`` (recursively) that ``model``, resolved through its
    discriminators, has no field for; and every discriminator value no class of the model's
    tree knows (``key`` then reads ``<name=value>``)."""
    return _walk(("model", model), value, path)


def _walk(shape: Shape, value: Any, path: str) -> list[Unknown]:
    if value is None or shape[0] in ("any", "scalar"):
        return []
    if shape[0] == "list":
        if not isinstance(value, list):
            return []
        return [p for i, v in enumerate(value) for p in _walk(shape[1], v, f"{path}[{i}]")]
    if shape[0] == "dict":
        if not isinstance(value, dict):
            return []
        return [p for k, v in value.items() for p in _walk(shape[1], v, f"{path}[{k!r}]")]
    if not isinstance(value, dict):
        return []
    cls, problems = resolve(shape[1], value, path)
    fields = known_fields(cls)
    out = list(problems)
    for key, sub in value.items():
        where = f"{path}.{key}"
        if key not in fields:
            out.append(Unknown(where, cls.__name__, key))
        else:
            out += _walk(fields[key], sub, where)
    return out


# -- discriminators ---------------------------------------------------------------------------

def resolve(cls: type, value: dict, path: str = "$") -> tuple[type, list[Unknown]]:
    """The most derived class ``value``'s discriminator values name, and any discriminator value
    no class of the tree knows."""
    problems: list[Unknown] = []
    while True:
        disc = discriminator(cls)
        if disc is None or disc not in value:
            return cls, problems
        found = _find_subclass(cls, disc, value[disc])
        if found is None:
            if _is_polymorphic_root(cls):
                problems.append(Unknown(f"{path}.{disc}", cls.__name__,
                                        f"<{disc}={value[disc]}>"))
            return cls, problems
        if found is cls:
            return cls, problems
        cls = found


def discriminator(cls: type) -> str | None:
    """The wire name of the field that picks ``cls``'s subclass (None if it has none)."""
    if hasattr(cls, "_subtype_map"):  # msrest
        subtypes = getattr(cls, "_subtype_map", None) or {}
        for attr in subtypes:
            key = cls._attribute_map[attr]["key"]
            return key.replace("\\.", ".")
        return None
    for klass in cls.__mro__:
        if "__mapping__" not in vars(klass):
            continue
        for attr, rf in vars(klass).items():
            if _is_rest_field(rf) and rf._is_discriminator:
                return rf._rest_name_input or attr
    return None


def _find_subclass(cls: type, disc: str, wanted: Any) -> type | None:
    """Depth-first through every subclass registered under ``cls`` for ``disc``'s value."""
    if hasattr(cls, "_subtype_map"):  # msrest: class names, looked up in the model module
        module = sys.modules[cls.__module__]
        for table in (cls._subtype_map or {}).values():
            name = table.get(wanted)
            if name:
                return getattr(module, name, None) or _models_package(cls).__dict__.get(name)
        return None
    stack = [cls]
    while stack:
        klass = stack.pop()
        mapping: dict[str, type] = vars(klass).get("__mapping__") or {}
        if wanted in mapping:
            return mapping[wanted]
        stack += [sub for sub in mapping.values() if discriminator(sub) == disc]
    return None


def _is_polymorphic_root(cls: type) -> bool:
    return bool(vars(cls).get("__mapping__") or getattr(cls, "_subtype_map", None))


# -- fields -----------------------------------------------------------------------------------

def _is_rest_field(obj: Any) -> bool:
    return type(obj).__name__ == "_RestField" and hasattr(obj, "_rest_name_input")


@cache
def known_fields(cls: type) -> dict[str, Shape]:
    """Wire name -> shape of every field ``cls`` knows (inherited ones included)."""
    if hasattr(cls, "_fields"):  # msrest's flattened ``properties``
        return dict(cls._fields)
    if hasattr(cls, "_attribute_map"):
        return _msrest_fields(cls)
    hints = _type_hints(cls)
    out: dict[str, Shape] = {}
    for klass in reversed(cls.__mro__):
        for attr, rf in vars(klass).items():
            if attr.startswith("_") or not _is_rest_field(rf):
                continue
            out[rf._rest_name_input or attr] = _shape(hints.get(attr, Any), cls)
    return out


def _models_package(cls: type) -> types.ModuleType:
    """``azure.mgmt.x.models`` for a class defined in ``azure.mgmt.x.models._models``."""
    name = cls.__module__
    while name and not name.endswith(".models"):
        name = name.rpartition(".")[0]
    return importlib.import_module(name or cls.__module__)


def _type_hints(cls: type) -> dict[str, Any]:
    """Annotations of ``cls`` and its model bases, with ``"_models.X"`` strings resolved (the
    generated modules import ``_models`` only under ``TYPE_CHECKING``)."""
    hints: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        if klass.__module__.startswith(("collections", "typing", "builtins")):
            continue
        module = sys.modules[klass.__module__]
        namespace = {**vars(module), "_models": _models_package(klass)}
        for attr, ann in vars(klass).get("__annotations__", {}).items():
            try:
                hints[attr] = typing._eval_type(  # type: ignore[attr-defined]
                    typing.ForwardRef(ann) if isinstance(ann, str) else ann, namespace, None)
            except Exception:  # an annotation we cannot evaluate: treat the value as free-form
                hints[attr] = Any
    return hints


def _shape(tp: Any, owner: type) -> Shape:
    if tp is Any:
        return ANY
    if isinstance(tp, type) and _is_model(tp):
        return ("model", tp)
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        shapes = [_shape(a, owner) for a in get_args(tp) if a is not type(None)]
        for wanted in ("model", "list", "dict", "any"):
            for s in shapes:
                if s[0] == wanted:
                    return s
        return SCALAR
    if origin is collections.abc.Sequence or (
            isinstance(origin, type) and issubclass(origin, list | tuple)):
        args = get_args(tp)
        return ("list", _shape(args[0], owner) if args else ANY)
    if origin is dict or (isinstance(origin, type) and issubclass(origin, dict)):
        args = get_args(tp)
        return ("dict", _shape(args[1], owner) if len(args) == 2 else ANY)
    if origin is Literal:
        return SCALAR
    return SCALAR


def _is_model(tp: type) -> bool:
    return any(k.__name__ == "Model" and "model_base" in k.__module__ for k in tp.__mro__) or (
        hasattr(tp, "_attribute_map"))


# -- msrest -----------------------------------------------------------------------------------

_MSREST_SPLIT = re.compile(r"(?<!\\)\.")


def _msrest_fields(cls: type) -> dict[str, Shape]:
    """msrest ``_attribute_map`` keys, with flattened ones (``properties.x``) as nested dicts."""
    tree: dict[str, Any] = {}
    for spec in cls._attribute_map.values():
        parts = [p.replace("\\.", ".") for p in _MSREST_SPLIT.split(spec["key"])]
        node = tree
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = _msrest_type(spec["type"], cls)

    def shape(node: Any) -> Shape:
        if isinstance(node, dict):
            return ("model", _flattened(tuple((k, shape(v)) for k, v in node.items())))
        return node

    return {k: shape(v) for k, v in tree.items()}


def _msrest_type(name: str, owner: type) -> Shape:
    if name.startswith("[") and name.endswith("]"):
        return ("list", _msrest_type(name[1:-1], owner))
    if name.startswith("{") and name.endswith("}"):
        return ("dict", _msrest_type(name[1:-1], owner))
    if name in ("object",):
        return ANY
    model = getattr(_models_package(owner), name, None)
    if isinstance(model, type) and hasattr(model, "_attribute_map"):
        return ("model", model)
    return SCALAR


@cache
def _flattened(fields: tuple[tuple[str, Shape], ...]) -> type:
    """A stand-in model for the ``properties`` object msrest flattens into its parent."""
    return type("Flattened", (), {"_attribute_map": {}, "_fields": dict(fields)})

