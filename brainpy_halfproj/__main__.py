"""``python -m brainpy_halfproj``: the main job (see ``_main.py``)."""
import sys

from ._main import main

if __name__ == "__main__":
    sys.exit(main())
