"""Published network models built on ``brainpy_halfproj`` projections.

The Potjans & Diesmann (2014) cortical microcircuit: its physics in
:mod:`~brainpy_halfproj.models.potjans2014`, its wiring in :class:`Microcircuit`
(:func:`microcircuit` builds it).

The ``bp.dyn`` models are imported here; the brainpy.state microcircuit
(:mod:`~brainpy_halfproj.models.microcircuit_state`: ``StateMicrocircuit``,
``state_microcircuit``, ``simulate_state``) is imported on first use, since brainpy.state
exists on brainpy >= 2.9 only.

Examples
--------
>>> from brainpy_halfproj import models
>>> models.POPULATIONS
('L23E', 'L23I', 'L4E', 'L4I', 'L5E', 'L5I', 'L6E', 'L6I')
>>> models.PUBLISHED_RATES['L23E'] < models.PUBLISHED_RATES['L23I']
True
"""
from . import potjans2014 as potjans2014
from .microcircuit import CONN_PROBS as CONN_PROBS
from .microcircuit import FULL_SIZES as FULL_SIZES
from .microcircuit import K_EXT as K_EXT
from .microcircuit import POPULATIONS as POPULATIONS
from .microcircuit import PUBLISHED_RATES as PUBLISHED_RATES
from .microcircuit import Microcircuit as Microcircuit
from .microcircuit import microcircuit as microcircuit
from .microcircuit import population_rates as population_rates
from .microcircuit import psp_to_psc as psp_to_psc
from .microcircuit import simulate as simulate
from .potjans2014 import MicrocircuitParams as MicrocircuitParams
from .potjans2014 import derive as derive

# The public names: everything imported above (see brainpy_halfproj/__init__.py); the
# brainpy.state names below are looked up on first use and not star-imported.
__all__ = sorted(name for name in dir() if not name.startswith("_"))

_STATE_NAMES = ("StateMicrocircuit", "state_microcircuit", "simulate_state", "default_state_namespace")


def __getattr__(name: str) -> object:
    if name not in _STATE_NAMES:
        raise AttributeError(f"module 'brainpy_halfproj.models' has no attribute {name!r}")
    from .._compat import BRAINPY_VERSION

    if BRAINPY_VERSION < (2, 9):
        import sys

        import brainpy

        raise ImportError(
            f"brainpy_halfproj.models.{name} builds the microcircuit from brainpy.state, which needs brainpy >= 2.9 "
            f"(Python >= 3.12); this is brainpy {brainpy.__version__} on Python {sys.version_info.major}."
            f"{sys.version_info.minor}. Use brainpy_halfproj.models.microcircuit (bp.dyn) on this line."
        )
    from . import microcircuit_state

    return getattr(microcircuit_state, name)
