"""brainpy-halfproj: align-post projections for BrainPy with a value-keyed merging registry."""
from importlib.metadata import version as _version

__version__ = _version("brainpy-halfproj")
