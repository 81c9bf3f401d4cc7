"""`python -m bench.chaos` (`make chaos`): see bench/chaos/run.py and docs/operations.md."""

import sys

from bench.chaos.run import main

if __name__ == "__main__":
    sys.exit(main())
