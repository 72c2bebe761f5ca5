"""Every public object has its own docstring, with an example that runs as a doctest.

The examples run where they are written: ``--doctest-modules`` (``pyproject.toml``) collects
every module of the package, so an example in a docstring of a class or function defined in
``brainpy_halfproj`` runs in the suite. This file checks that every public object has one.
"""
import doctest
import inspect
import types

import numpy as np
import pytest

import brainpy_halfproj as bhp
import brainpy_halfproj.dyn
import brainpy_halfproj.models

#: Public values (numbers, tables): documented where they are defined, nothing to run.
VALUES = (int, float, str, tuple, dict, frozenset, np.ndarray)


def _public():
    for module, names in ((bhp, dir(bhp)), (bhp.models, dir(bhp.models)),
                          (bhp.dyn, sorted(bhp.dyn._OURS))):  # dyn's own classes; the rest is brainpy's
        for name in names:
            if not name.startswith("_") and not isinstance(getattr(module, name), VALUES):
                yield f"{module.__name__}.{name}", getattr(module, name)


PUBLIC = dict(_public())


def test_the_public_names_are_found():
    assert {"brainpy_halfproj.HalfProjAlignPostMg", "brainpy_halfproj.SparseRows", "brainpy_halfproj.VariableInfo",
            "brainpy_halfproj.models.simulate", "brainpy_halfproj.dyn.ProjAlignPostMg1"} <= set(PUBLIC)


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_public_object_has_its_own_docstring_with_a_running_example(name):
    obj = PUBLIC[name]
    doc = vars(obj).get("__doc__") if inspect.isclass(obj) else obj.__doc__  # a class's own, not inherited
    assert doc, f"{name} has no docstring of its own"
    assert "Examples\n" in inspect.cleandoc(doc), f"{name}'s docstring has no Examples section"
    tests = doctest.DocTestFinder(recurse=False).find(obj, name)
    assert tests and tests[0].examples, f"{name}'s Examples section has no doctest (>>>)"
    # defined in this package, so --doctest-modules collects and runs it
    module = obj if isinstance(obj, types.ModuleType) else inspect.getmodule(obj)
    assert module.__name__.startswith("brainpy_halfproj"), f"{name} is defined in {module.__name__}"
