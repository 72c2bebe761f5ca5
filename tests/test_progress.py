"""When progress bars show: ``progress=None`` means "when a person is watching"."""
import io
import sys
import types

import pytest

from brainpy_halfproj._progress import show_progress, watching


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_terminal_is_watched(monkeypatch):
    monkeypatch.setattr(sys, "stderr", _Terminal())
    assert watching() and show_progress(None)


def test_a_pipe_or_a_captured_stream_is_not_watched(monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    assert not watching() and not show_progress(None)


@pytest.mark.parametrize("shell, watched", [(types.SimpleNamespace(kernel=object()), True),
                                            (types.SimpleNamespace(), False), (None, False)],
                         ids=["jupyter-kernel", "terminal-ipython", "plain-python"])
def test_jupyter_is_watched(monkeypatch, shell, watched):
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))
    assert watching() is watched


def test_explicit_choices_win(monkeypatch):
    monkeypatch.setattr(sys, "stderr", _Terminal())
    assert show_progress(False) is False
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert show_progress(True) is True
    with pytest.raises(TypeError, match=r"progress must be True, False or None .*got int: 1"):
        show_progress(1)
