"""The one registry mechanism: names -> objects, for models, encoders, KG formats, importers and commands.

A :class:`Registry` maps a name to an object. Built-in entries may be given lazily as a
``"package.module:attribute"`` string, resolved on first use, so that a registry living in a
lower layer can list entries from a higher one without importing it (transformers' auto
classes do the same), and so that ``tiktalk --help`` does not import torch.

    MODELS = Registry("model", {"maria": "fusion.modeling_maria:MariaForDialogue"})
    MODELS.register("my-model", MyModel)          # or as a decorator: @MODELS.register("my-model")
    MODELS.get("maria")                          # -> the class, imported on first use

Where each kind of component is registered (add yours there, or call ``.register`` on it):

- model: ``tiktalk/models/base.py`` ``MODELS`` (a ``ChatModel`` subclass, built-ins
  as ``"module:Class"`` strings); your own with ``register_model`` (a decorator).
- encoder: ``retrieval/encoders.py`` ``ENCODERS`` (an ``EncoderFactory``; ``name:<argument>``
  names are parsed once, in ``parse_encoder_name``).
- passage view: ``retrieval/views.py`` ``VIEWS`` (a ``(graph, heads) -> texts`` function; the
  texts a head is encoded from, weighted by ``index build --views``).
- KG release format: ``kg/readers.py`` ``FORMATS`` (a ``ReleaseFormat``: reader, suffixes,
  how to recognise a file); ``sniff_format`` and the directory scan both read it.
- importer (``data import --from NAME``): ``tiktalk/importers/__init__.py`` ``IMPORTERS`` (an
  ``Importer``: reader, summary, what SOURCE is, the options it reads); the command's
  choices and help read it.
- command: ``tiktalk/commands/main.py`` ``COMMANDS`` (a module of ``tiktalk.commands`` with
  ``register(subparsers)``).
- selection: ``retrieval/selection.py`` ``SELECTIONS``.
- metric tokenizer: ``tiktalk/metrics.py`` ``TOKENIZERS``. The metrics themselves are a fixed
  table (the paper's Table 3: ``METRIC_KEYS`` and ``evaluate`` in ``tiktalk/metrics.py``),
  not a registry: one coco-caption pass computes them together.

Installed packages add entries without editing the library, by entry points in the group
``tiktalk.<kind>s`` (:func:`entry_point_group`: ``tiktalk.encoders``, ``tiktalk.models``,
``tiktalk.kg_formats``, ``tiktalk.importers``, ``tiktalk.selections``, ``tiktalk.passage_views``,
``tiktalk.tokenizers``), whose value is the same ``"module:attribute"`` string::

    # a plugin's pyproject.toml
    [project.entry-points."tiktalk.encoders"]
    my-encoder = "my_package.encoders:MY_ENCODER_FACTORY"

They are listed (and so appear in the command line's help) from the first look at the
registry on, and imported only when used; a plugin's name that is already taken is an error
naming both.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

from tiktalk.errors import UsageError

T = TypeVar("T")


def entry_point_group(kind: str) -> str:
    """The entry-point group of a registry of ``kind``: ``"KG format"`` -> ``tiktalk.kg_formats``."""
    return "tiktalk." + kind.lower().replace(" ", "_").replace("-", "_") + "s"


class Registry(Generic[T]):
    """Name -> object; entries given as ``"module:attribute"`` strings are imported lazily.

    ``entry_points``: the entry-point group read for installed plugins' entries (default
    :func:`entry_point_group` of ``kind``; None: none)."""

    def __init__(self, kind: str, entries: dict[str, str | T] | None = None, *,
                 entry_points: str | None = ""):
        self.kind = kind
        self._entries: dict[str, str | T] = dict(entries or {})
        self.entry_point_group = entry_point_group(kind) if entry_points == "" else entry_points
        self._plugins_loaded = self.entry_point_group is None

    def load_entry_points(self) -> None:
        """Add the installed entry points of :attr:`entry_point_group` (once; again after
        :meth:`reload_entry_points`). A name already registered to something else is an error."""
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for point in importlib.metadata.entry_points(group=self.entry_point_group):
            current = self._entries.get(point.name)
            if current is not None and current != point.value:
                dist = getattr(point.dist, "name", "?")
                raise UsageError(f"{self.kind} {point.name!r} of plugin {dist} (entry point {point.value}, "
                                 f"group {self.entry_point_group}) is already registered ({current!r})")
            self._entries[point.name] = point.value

    def reload_entry_points(self) -> None:
        """Read the entry points again on next use (after installing a plugin in-process)."""
        self._plugins_loaded = self.entry_point_group is None

    def register(self, name: str, obj: T | None = None) -> Any:
        """Add ``obj`` under ``name``; without ``obj`` returns a decorator. Re-registering a
        name with a different object is an error (two plugins must not shadow each other)."""

        self.load_entry_points()

        def add(target: T) -> T:
            current = self._entries.get(name)
            if current is not None and current is not target and self._resolve(name) is not target:
                raise UsageError(f"{self.kind} name {name!r} is already registered ({current!r})")
            self._entries[name] = target
            return target

        return add if obj is None else add(obj)

    def unregister(self, name: str) -> None:
        """Remove ``name`` (a plugin unloading, a test cleaning up); an unknown name is an error."""
        self.load_entry_points()
        if name not in self._entries:
            raise UsageError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}")
        del self._entries[name]

    def _resolve(self, name: str) -> T:
        entry = self._entries[name]
        if isinstance(entry, str):
            module, _, attribute = entry.partition(":")
            entry = getattr(importlib.import_module(module), attribute)
            self._entries[name] = entry
        return entry

    def get(self, name: str) -> T:
        self.load_entry_points()
        if name not in self._entries:
            raise UsageError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}")
        return self._resolve(name)

    def names(self) -> list[str]:
        self.load_entry_points()
        return list(self._entries)

    def items(self) -> Iterator[tuple[str, T]]:
        for name in self.names():
            yield name, self._resolve(name)

    def __contains__(self, name: object) -> bool:
        self.load_entry_points()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

