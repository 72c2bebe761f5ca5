"""The API reference, generated from the package's public names at every build.

Public modules: ``brainpy_halfproj`` and every module under it whose dotted name has no
part that starts with ``_`` (found with ``pkgutil``, so a new public module appears by
itself). A public module's public names are its ``__all__``, which it must have. Each object
gets one page, under the first public module that lists it (modules in the order above);
other modules that re-export it say which object it is. ``brainpy_halfproj.dyn`` also
forwards every ``brainpy.dyn`` name, and ``brainpy_halfproj.state`` (brainpy >= 2.9, which the
build needs) every ``brainpy.state`` name: only objects defined in this package get pages there.

:func:`check_build` fails the build (a warning, and the build runs with ``-W``) for a public
name without its own docstring or without a page.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil
import shutil
import types
from pathlib import Path
from typing import Any

from sphinx.pycode import ModuleAnalyzer
from sphinx.util import logging

PACKAGE = "brainpy_halfproj"
logger = logging.getLogger(__name__)
PENDING_DOCSTRINGS: set[str] = set()  # public objects whose docstring another branch is adding (conf.py)
PENDING_EXPORTS: set[str] = set()  # names another branch is adding to the package (conf.py)
FRONTS = {f"{PACKAGE}.dyn": "brainpy.dyn", f"{PACKAGE}.state": "brainpy.state"}  # drop-ins: module -> upstream


def public_modules() -> list[types.ModuleType]:
    """The package and its public submodules, in a stable order (package first)."""
    package = importlib.import_module(PACKAGE)
    names = sorted(info.name for info in pkgutil.walk_packages(package.__path__, PACKAGE + ".")
                   if not any(part.startswith("_") for part in info.name.split(".")))
    return [package] + [importlib.import_module(name) for name in names]


def ours(module: types.ModuleType, name: str) -> bool:
    """Whether ``module.name`` is this package's (names ``dyn`` forwards to ``brainpy.dyn`` are not)."""
    obj = getattr(module, name)
    if inspect.isclass(obj) or inspect.isroutine(obj):
        return obj.__module__ == PACKAGE or obj.__module__.startswith(PACKAGE + ".")
    return name in vars(module)  # a constant: set in the module itself, not forwarded


def attribute_doc(obj: Any, name: str) -> str | None:
    """The ``#:`` comment or string that documents a module-level constant where it is defined."""
    for info in pkgutil.walk_packages(importlib.import_module(PACKAGE).__path__, PACKAGE + "."):
        module = importlib.import_module(info.name)
        if getattr(module, name, None) is not obj:
            continue
        docs = ModuleAnalyzer.for_module(info.name).find_attr_docs().get(("", name))
        if docs:
            return "\n".join(docs).strip()
    return None


def own_doc(obj: Any) -> str | None:
    """The object's own docstring (a class's, not one it inherits)."""
    doc = obj.__dict__.get("__doc__") if isinstance(obj, type) else getattr(obj, "__doc__", None)
    return inspect.cleandoc(doc) if isinstance(doc, str) and doc.strip() else None


def catalogue() -> list[tuple[types.ModuleType, list[tuple[str, Any, str | None]]]]:
    """Per public module: ``(name, object, home)``; ``home`` is the full name of the object's page
    when that page is elsewhere (``None``: the page is here).

    An object's page is in the public module that defines it (so the relative references its
    docstring makes resolve there), else in the first public module that lists it.
    """
    modules = public_modules()
    public = {m.__name__ for m in modules}
    listed = []
    for module in modules:
        if not hasattr(module, "__all__"):
            logger.warning(f"{module.__name__} has no __all__: the API reference cannot tell its public names")
            continue
        listed.append((module, [(name, getattr(module, name)) for name in module.__all__
                                if not isinstance(getattr(module, name), types.ModuleType)
                                and ours(module, name)]))
    homes: dict[int, str] = {}
    for module, entries in listed:  # defining public modules first
        for name, obj in entries:
            if getattr(obj, "__module__", None) == module.__name__ and getattr(obj, "__name__", name) == name:
                homes.setdefault(id(obj), f"{module.__name__}.{name}")
    for module, entries in listed:
        for name, obj in entries:
            homes.setdefault(id(obj), f"{module.__name__}.{name}")
    assert all(h.rsplit(".", 1)[0] in public for h in homes.values())
    return [(module, [(name, obj, None if homes[id(obj)] == f"{module.__name__}.{name}" else homes[id(obj)])
                      for name, obj in entries]) for module, entries in listed]


def directive(obj: Any) -> str:
    """The Python domain directive for an object of this kind."""
    if inspect.isclass(obj):
        return "exception" if issubclass(obj, BaseException) else "class"
    return "function" if inspect.isroutine(obj) else "data"


def is_data(obj: Any) -> bool:
    return not (inspect.isclass(obj) or inspect.isroutine(obj))


def summary(module: types.ModuleType) -> str:
    doc = inspect.getdoc(module) or ""
    return doc.split("\n\n")[0].strip()


def write(folder: Path) -> None:
    """Write ``folder/index.rst``: one section per public module, autosummary tables of its objects."""
    if (folder / "generated").exists():  # stubs of names that moved or went away must not linger
        shutil.rmtree(folder / "generated")
    folder.mkdir(exist_ok=True)
    lines = ["API reference", "=============", "",
             "Every public name of the package, generated from the modules' ``__all__`` and the "
             "numpydoc docstrings. Each object has one page; a name that a module re-exports "
             "points to it.", ""]
    for module, entries in catalogue():
        title = f"``{module.__name__}``"
        parent, _, last = module.__name__.rpartition(".")
        # a module named like an object of its parent (models.microcircuit, the module and the
        # function): the function keeps the name as a reference target
        shadowed = parent and getattr(importlib.import_module(parent), last, module) is not module
        lines += [title, "-" * len(title), "", summary(module), "", f".. py:module:: {module.__name__}"]
        lines += (["   :no-index:"] if shadowed else []) + ["", f".. currentmodule:: {module.__name__}", ""]
        pages = [name for name, obj, home in entries if home is None and not is_data(obj)]
        if pages:
            lines += [".. autosummary::", "   :toctree: generated", "   :nosignatures:", ""]
            lines += [f"   {name}" for name in pages] + [""]
        for name, obj, home in entries:
            if home is None and is_data(obj):
                lines += [f".. py:data:: {name}", ""]
                doc = attribute_doc(obj, name) or ""
                lines += [f"   {line}" for line in doc.splitlines()] + [""]
        aliases = [(name, obj, home) for name, obj, home in entries if home is not None]
        if aliases:  # a reference target for each name, pointing to the page
            lines += ["Also available here, the very same objects:", ""]
            for name, obj, home in aliases:
                lines += [f".. py:{directive(obj)}:: {name}", "   :no-index-entry:", "",
                          f"   The same object as :py:obj:`{home}`.", ""]
        upstream = FRONTS.get(module.__name__)
        if upstream is not None:
            lines += [f"Every other public name of ``{upstream}`` resolves here to the very same object "
                      f"({sum(1 for n in module.__all__ if not ours(module, n))} names on this "
                      "brainpy line).", ""]
    text = "\n".join(lines)
    index = folder / "index.rst"
    if not index.exists() or index.read_text() != text:  # unchanged: Sphinx need not reread it
        index.write_text(text)


def check_build(app: Any, exception: Exception | None) -> None:
    """Every public object has its own docstring and a documented entry (a page, or a data entry)."""
    if exception is not None:
        return
    documented = set(app.env.domains["py"].objects)
    for module, entries in catalogue():
        for name, obj, home in entries:
            if home is not None:
                continue
            full = f"{module.__name__}.{name}"
            doc = attribute_doc(obj, name) if is_data(obj) else own_doc(obj)
            if not doc and full not in PENDING_DOCSTRINGS:
                logger.warning(f"{full} has no docstring of its own: write one (NumPy style, with an example)")
            if doc and full in PENDING_DOCSTRINGS:
                logger.warning(f"{full} has its docstring now: remove it from PENDING_DOCSTRINGS in docs/conf.py")
            if full not in documented:
                logger.warning(f"{full} is public (in {module.__name__}.__all__) but has no page in the API reference")
    package = importlib.import_module(PACKAGE)
    for name in sorted(PENDING_EXPORTS & set(package.__all__)):
        logger.warning(f"{PACKAGE}.{name} is exported now: remove it from PENDING_EXPORTS (and nitpick_ignore) "
                       f"in docs/conf.py")
