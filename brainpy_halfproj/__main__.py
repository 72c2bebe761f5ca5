"""``python -m brainpy_halfproj``: run the seed E/I network demo."""
import sys

from ._demo import main

if __name__ == "__main__":
    sys.exit(main())
