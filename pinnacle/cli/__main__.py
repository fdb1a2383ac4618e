"""``python -m pinnacle.cli``."""

import sys

from pinnacle.cli.app import main

if __name__ == "__main__":
    sys.exit(main())
