"""Name -> component registries filled by the plugins' ``register_*`` hooks."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import UserError


@dataclass(frozen=True)
class Component:
    """A registered component: its name, the object (usually a class), and who provided it."""

    name: str
    obj: Any
    plugin: str
    description: str = ""


class Registry:
    """Components of one kind ("editor", "dataset", "mask strategy") by name."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, Component] = {}

    def add(self, component: Component) -> None:
        if component.name in self._items:
            other = self._items[component.name].plugin
            raise UserError(
                f"{self.kind} '{component.name}' is registered twice (plugins '{other}' and "
                f"'{component.plugin}'); block one with LIME_TOOLKIT_BLOCK_PLUGINS"
            )
        self._items[component.name] = component

    def get(self, name: str) -> Component:
        try:
            return self._items[name]
        except KeyError:
            import difflib

            installed = ", ".join(self.names()) or "none"
            close = difflib.get_close_matches(str(name), self.names(), n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise UserError(f"unknown {self.kind} '{name}'; installed: {installed}{hint}") from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def by_plugin(self, plugin: str) -> list[str]:
        return sorted(n for n, c in self._items.items() if c.plugin == plugin)

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def __iter__(self):
        return iter(self._items[n] for n in self.names())
