"""``brainpy_halfproj.state`` as a drop-in for ``brainpy.state``; its ImportError on older lines."""
from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

from brainpy_halfproj._compat import BRAINPY_VERSION

needs_29 = pytest.mark.skipif(BRAINPY_VERSION < (2, 9), reason="brainpy.state front needs brainpy >= 2.9")


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.slow
def test_importing_the_plugin_imports_no_brainpy_state_module_of_its_own():
    # brainpy 2.8/2.9 import brainpy.state themselves; the plugin must add nothing to that.
    out = _run("import sys, brainpy\n"
               "before = {m for m in sys.modules if 'state' in m}\n"
               "import brainpy_halfproj\n"
               "print(sorted({m for m in sys.modules if 'state' in m} - before))")
    assert out == "[]"


@pytest.mark.skipif(BRAINPY_VERSION >= (2, 9), reason="brainpy 2.9 has the brainpy.state front")
def test_older_brainpy_refuses_with_what_it_needs():
    with pytest.raises(ImportError, match=r"brainpy_halfproj.state needs brainpy >= 2.9 .* Python >= 3.12; "
                                          r"this is brainpy 2\.[58].* on Python 3\.\d+"):
        import brainpy_halfproj.state  # noqa: F401


@needs_29
def test_every_upstream_name_is_the_same_object_except_ours():
    import brainpy.state as upstream

    import brainpy_halfproj.state as bst

    ours = {"AlignPostProj", "align_post_projection"}
    for name in upstream.__all__:
        if name in ours:
            assert getattr(bst, name) is not getattr(upstream, name)
            assert issubclass(getattr(bst, name), getattr(upstream, name))
        else:
            assert getattr(bst, name) is getattr(upstream, name), name
    assert set(upstream.__all__) <= set(bst.__all__) == set(dir(bst))


@needs_29
def test_our_classes_keep_upstream_signatures():
    import brainpy.state as upstream

    import brainpy_halfproj.state as bst

    for name in ("AlignPostProj", "align_post_projection"):
        ours = inspect.signature(getattr(bst, name).__init__).parameters
        theirs = inspect.signature(getattr(upstream, name).__init__).parameters
        assert [(p.name, p.kind, p.default) for p in theirs.values()] == \
               [(p.name, p.kind, p.default) for p in ours.values() if p.name in theirs]
        extra = [p for p in ours.values() if p.name not in theirs]
        assert all(p.kind is p.KEYWORD_ONLY for p in extra)


@needs_29
def test_unknown_names_say_where_they_were_looked_for():
    import brainpy_halfproj.state as bst

    with pytest.raises(AttributeError, match=r"no attribute 'Nope' \(nor has brainpy.state\)"):
        bst.Nope  # noqa: B018


@needs_29
def test_importing_the_front_changes_nothing_in_brainpy():
    out = _run("import brainpy.state as s, brainpy.state.projection as p\n"
               "before = (s.AlignPostProj, s.align_post_projection, p.align_post_add_bef_update)\n"
               "import brainpy_halfproj.state\n"
               "print((s.AlignPostProj, s.align_post_projection, p.align_post_add_bef_update) == before)")
    assert out == "True"
