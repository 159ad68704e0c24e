"""``python -m complexity``: see :mod:`complexity.cli.main`."""
import sys

from complexity.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
