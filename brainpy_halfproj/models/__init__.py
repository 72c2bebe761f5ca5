"""Published network models built on ``brainpy_halfproj`` projections.

The Potjans & Diesmann (2014) cortical microcircuit: its physics in
:mod:`~brainpy_halfproj.models.potjans2014`, its wiring in :class:`Microcircuit`
(:func:`microcircuit` builds it).

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

# The public names: everything imported above (see brainpy_halfproj/__init__.py).
__all__ = sorted(name for name in dir() if not name.startswith("_"))
