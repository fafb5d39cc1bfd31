"""Name-to-class registries, so configs can be saved as data and resolved safely.

A saved model names its parts ("dense", "relu", "adam"); loading looks those
names up here and nowhere else, so a model file can never make us import or
run arbitrary code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class Registry:
    """A mapping from lower-case names to classes (or functions) of one kind."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, Any] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Class decorator that records ``cls`` under ``name``."""

        def decorator(obj: T) -> T:
            self._items[name] = obj
            obj.registry_name = name  # type: ignore[attr-defined]
            return obj

        return decorator

    def alias(self, name: str, target: str) -> None:
        """Make ``name`` another name for the already registered ``target``."""
        self._items[name] = self._items[target]

    def names(self) -> list[str]:
        """All registered names, sorted."""
        return sorted(self._items)

    def get(self, name: str) -> Any:
        """Look ``name`` up; an unknown name raises an error listing valid names."""
        if not isinstance(name, str):
            raise TypeError(f"{self.kind} name must be a string. Received {name!r}.")
        key = name.lower().replace("-", "_")
        if key not in self._items:
            raise ValueError(f"Unknown {self.kind} {name!r}. Valid names: {', '.join(self.names())}.")
        return self._items[key]

    def resolve(self, spec: Any, base: type, **kwargs: Any) -> Any:
        """Turn a name or an instance of ``base`` into an instance."""
        if isinstance(spec, base):
            return spec
        if isinstance(spec, str):
            return self.get(spec)(**kwargs)
        raise TypeError(
            f"Expected a {self.kind} name ({', '.join(self.names())}) or a {base.__name__} instance. Received {spec!r}."
        )

    def from_config(self, config: dict[str, Any]) -> Any:
        """Rebuild an object from ``{"name": ..., **kwargs}``."""
        config = dict(config)
        return self.get(config.pop("name"))(**config)
