"""When to show a progress bar: the one rule for every long-running call of the package.

``progress=None`` (the default everywhere) means "when a person is watching": standard
error is a terminal, or the code runs in a Jupyter kernel. Piped output, log files and
test runs (pytest captures standard error) stay free of progress bars.
"""
from __future__ import annotations

import sys

__all__ = ["show_progress", "watching"]


def watching() -> bool:
    """Whether a person is likely watching: stderr is a terminal, or this is a Jupyter kernel."""
    try:
        if sys.stderr is not None and sys.stderr.isatty():
            return True
    except (AttributeError, ValueError):  # a replaced or closed stream
        pass
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return shell is not None and hasattr(shell, "kernel")  # a terminal IPython has no kernel


def show_progress(progress: bool | None) -> bool:
    """Resolve a ``progress`` argument: ``True``/``False`` as given, ``None`` -> :func:`watching`.

    Raises
    ------
    TypeError
        If ``progress`` is not ``True``, ``False`` or ``None``.
    """
    if progress is None:
        return watching()
    if not isinstance(progress, bool):
        raise TypeError(f"progress must be True, False or None (show it when a person is watching), "
                        f"got {type(progress).__name__}: {progress!r}")
    return progress
