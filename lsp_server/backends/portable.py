"""Stop rules that can run in another process: frozen dataclasses, sent as data.

A stop rule decides after every token whether to cut the text. When the model runs in the
engine process (engine_host/), checking the rule in the client would cost a round trip per
token and let the engine run past the cut; so the rules cross the process boundary as data
and are rebuilt there as the same classes. A class may cross when it is marked `@portable`
(a frozen dataclass of strings, numbers, tuples and other portable values); the engine
imports the module that defines it by name, and only ninetyten's own modules, and then
only builds classes that marked themselves portable there.

The feature that owns a rule keeps it (completion/rules.py's `StopRule`): nothing here
knows which rules exist.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, TypeVar

from lsp_server.backends.base import BackendError

T = TypeVar("T")

_REGISTRY: dict[str, type] = {}
# Only modules of this package are imported to find a class named in a message.
_OWN_PACKAGE = "lsp_server."


class NotPortable(BackendError):
    """A value that cannot cross to the engine process (the caller runs it in-process or refuses)."""


def portable(cls: type[T]) -> type[T]:
    """Mark a frozen dataclass as one that may be rebuilt in the engine process from its fields."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls.__name__} is not a dataclass")
    _REGISTRY[f"{cls.__module__}:{cls.__qualname__}"] = cls
    return cls


def to_data(value: Any) -> Any:
    """A JSON-able form of a portable value (None stays None)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (tuple, list)):
        return [to_data(item) for item in value]
    kind = type(value)
    name = f"{kind.__module__}:{kind.__qualname__}"
    if dataclasses.is_dataclass(value) and _REGISTRY.get(name) is kind:
        return {"type": name, "fields": {f.name: to_data(getattr(value, f.name)) for f in dataclasses.fields(value)}}
    raise NotPortable(f"a stop rule of type {kind.__name__} cannot run in the engine process")


def from_data(data: Any) -> Any:
    """The value `to_data` described; NotPortable for a class that never marked itself portable."""
    if isinstance(data, list):
        return tuple(from_data(item) for item in data)
    if not isinstance(data, dict):
        return data
    name, fields = data.get("type"), data.get("fields")
    if not isinstance(name, str) or not isinstance(fields, dict):
        raise NotPortable("a portable value needs a type and its fields")
    cls = _lookup(name)
    try:
        return cls(**{key: from_data(item) for key, item in fields.items()})
    except TypeError as error:
        raise NotPortable(f"{name}: {error}") from None


def _lookup(name: str) -> type:
    if name not in _REGISTRY:
        module = name.partition(":")[0]
        if module.startswith(_OWN_PACKAGE):
            try:
                importlib.import_module(module)
            except ImportError:
                pass
    cls = _REGISTRY.get(name)
    if cls is None:
        raise NotPortable(f"{name} is not a portable stop rule")
    return cls


__all__ = ["NotPortable", "from_data", "portable", "to_data"]
