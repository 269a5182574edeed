"""The one plugin manager: built-in and third-party plugins load through the same entry points.

Every plugin is a module (or object) found in the entry-point group ``lime_toolkit``. Loading is
isolated: a plugin that fails to import, declares an incompatible API version, implements a hook
that does not exist (a misspelling), or raises while registering is recorded with its error and
skipped; the others keep working. ``LIME_TOOLKIT_BLOCK_PLUGINS`` (comma list of plugin names) skips
plugins entirely.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Iterator

import pluggy

from lime_toolkit import hookspecs
from lime_toolkit.errors import PluginError
from lime_toolkit.registry import Component, Registry

ENTRY_POINT_GROUP = "lime_toolkit"
API_VERSION = "1"
BLOCK_ENV = "LIME_TOOLKIT_BLOCK_PLUGINS"
HOOK_NAMES = sorted(n for n in dir(hookspecs) if n.startswith("register_"))
KINDS = {"register_editors": "editor", "register_datasets": "dataset", "register_mask_strategies": "mask strategy"}


@dataclass
class PluginInfo:
    """What ``list-plugins`` shows for one plugin."""

    name: str
    distribution: str | None = None
    version: str | None = None
    api_version: str | None = None
    editors: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    masks: list[str] = field(default_factory=list)
    hooks: list[str] = field(default_factory=list)
    status: str = "ok"  # ok | error | blocked | incompatible
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "distribution": self.distribution, "version": self.version,
            "api_version": self.api_version, "editors": self.editors, "datasets": self.datasets,
            "masks": self.masks, "hooks": self.hooks, "status": self.status, "error": self.error,
        }


def _blocked() -> set[str]:
    return {p.strip() for p in os.environ.get(BLOCK_ENV, "").split(",") if p.strip()}


def _api_compatible(declared: str | None) -> bool:
    return declared is None or str(declared).split(".")[0] == API_VERSION.split(".")[0]


def _unknown_hooks(plugin: Any) -> list[str]:
    marker = f"{hookspecs.PROJECT}_impl"
    names = [n for n in dir(plugin) if getattr(getattr(plugin, n, None), marker, None) is not None]
    return [n for n in names if n not in HOOK_NAMES]


class PluginManager:
    """Loads plugins and resolves component names to components."""

    def __init__(self, load_entry_points: bool = True):
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        self._registries: dict[str, Registry] | None = None
        if load_entry_points:
            self._load_entry_points()

    # -- loading ---------------------------------------------------------------------------
    def _load_entry_points(self) -> None:
        blocked = _blocked()
        eps = sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)
        for ep in eps:
            dist = getattr(ep, "dist", None)
            info = PluginInfo(ep.name, dist.name if dist else None, dist.version if dist else None)
            self.infos[ep.name] = info
            if ep.name in blocked:
                info.status, info.error = "blocked", f"blocked by {BLOCK_ENV}"
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # isolate: any failure inside a plugin's import
                info.status, info.error = "error", f"failed to import {ep.value}: {type(exc).__name__}: {exc}"
                continue
            self._register(plugin, info)

    def _register(self, plugin: Any, info: PluginInfo) -> None:
        info.api_version = getattr(plugin, "LIME_TOOLKIT_API", None)
        if info.api_version is not None:
            info.api_version = str(info.api_version)
        if not _api_compatible(info.api_version):
            info.status = "incompatible"
            info.error = (f"plugin '{info.name}' was written for plugin API {info.api_version}; this "
                          f"lime-toolkit provides API {API_VERSION}: upgrade the plugin or lime-toolkit")
            return
        unknown = _unknown_hooks(plugin)
        if unknown:
            info.status = "error"
            info.error = (f"plugin '{info.name}' implements unknown hook(s) {', '.join(unknown)}; "
                          f"known hooks: {', '.join(HOOK_NAMES)}")
            return
        try:
            self.pm.register(plugin, name=info.name)
        except Exception as exc:
            info.status, info.error = "error", f"failed to register: {type(exc).__name__}: {exc}"
            return
        info.hooks = sorted(caller.name for caller in self.pm.get_hookcallers(plugin) or [])
        self._registries = None

    def register(self, plugin: Any, name: str, distribution: str | None = None, version: str | None = None) -> PluginInfo:
        """Register a plugin object in-process (tests, notebooks). Raises :class:`PluginError` when
        it cannot be loaded, since the caller asked for exactly this plugin."""
        if name in self.infos:
            raise PluginError(f"a plugin named '{name}' is already registered")
        info = PluginInfo(name, distribution, version)
        self.infos[name] = info
        self._register(plugin, info)
        if info.error:
            del self.infos[name]
            raise PluginError(info.error)
        self.plugins()  # collect now, so the returned info lists what the plugin provides
        if info.error:  # it raised while registering its components
            self.unregister(name)
            raise PluginError(info.error)
        return info

    def unregister(self, name: str) -> None:
        """Remove an in-process plugin again."""
        if self.pm.has_plugin(name):
            self.pm.unregister(name=name)
        self.infos.pop(name, None)
        self._registries = None

    # -- components ------------------------------------------------------------------------
    def _collect(self) -> dict[str, Registry]:
        registries = {hook: Registry(kind) for hook, kind in KINDS.items()}
        for hook_name, registry in registries.items():
            for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                info = self.infos.get(impl.plugin_name)
                if info is None or info.status != "ok":
                    continue

                def register(name, obj, description="", _plugin=impl.plugin_name, _reg=registry):
                    _reg.add(Component(str(name), obj, _plugin, description, kind=_reg.kind))

                try:
                    impl.function(register=register)
                except Exception as exc:  # isolate a plugin that raises while registering
                    info.status, info.error = "error", f"{hook_name} raised {type(exc).__name__}: {exc}"
        for info in self.infos.values():
            if info.status != "ok":  # drop anything a plugin registered before it failed
                for registry in registries.values():
                    registry._items = {n: c for n, c in registry._items.items() if c.plugin != info.name}
            info.editors = registries["register_editors"].by_plugin(info.name)
            info.datasets = registries["register_datasets"].by_plugin(info.name)
            info.masks = registries["register_mask_strategies"].by_plugin(info.name)
        return registries

    def _registry(self, hook: str) -> Registry:
        if self._registries is None:
            self._registries = self._collect()
        return self._registries[hook]

    @property
    def editors(self) -> Registry:
        return self._registry("register_editors")

    @property
    def datasets(self) -> Registry:
        return self._registry("register_datasets")

    @property
    def masks(self) -> Registry:
        return self._registry("register_mask_strategies")

    def plugins(self, check: bool = False) -> list[PluginInfo]:
        """Every plugin seen, in name order, with what it provides. Components registered lazily
        (by import path) are not imported unless ``check``: then each one is, and a plugin whose
        component fails to import is marked ``error`` with that one-line message."""
        self._registry("register_editors")
        if check:
            for registry in self._registries.values():
                for component in registry:
                    info = self.infos.get(component.plugin)
                    if component.loaded or info is None or info.status != "ok":
                        continue
                    try:
                        component.obj
                    except PluginError as exc:
                        info.status, info.error = "error", str(exc)
        return [self.infos[n] for n in sorted(self.infos)]

    def add_commands(self, cli) -> None:
        """Let plugins add subcommands to the click group (errors are isolated per plugin)."""
        for impl in self.pm.hook.register_commands.get_hookimpls():
            try:
                impl.function(cli=cli)
            except Exception as exc:
                info = self.infos.get(impl.plugin_name)
                if info is not None:
                    info.status, info.error = "error", f"register_commands raised {type(exc).__name__}: {exc}"


_manager: PluginManager | None = None


def get_plugin_manager() -> PluginManager:
    """The process-wide plugin manager (loaded on first use)."""
    global _manager
    if _manager is None:
        _manager = PluginManager()
    return _manager


def reset_plugin_manager() -> None:
    """Forget the loaded plugins (the next call reloads the entry points)."""
    global _manager
    _manager = None


@contextlib.contextmanager
def plugin_registered(plugin: Any, name: str) -> Iterator[PluginInfo]:
    """Register ``plugin`` in the process-wide manager for the duration of a ``with`` block."""
    manager = get_plugin_manager()
    info = manager.register(plugin, name)
    try:
        yield info
    finally:
        manager.unregister(name)
