"""A small name -> class registry (one per extension point, e.g. modality tokenizers)."""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

from unialign.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to classes; registering a name twice or asking for an unknown one fails loudly."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering a class under `name`."""

        def deco(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise ConfigError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return deco

    def get(self, name: str) -> T:
        """The class registered as `name`."""
        if name not in self._items:
            raise ConfigError(f"unknown {self.kind} {name!r}; registered: {self.names()}")
        return self._items[name]

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items
