"""`python -m bench.chaos` (`make chaos`): see bench/chaos/run.py and the README's "Failure"."""

import sys

from bench.chaos.run import main

if __name__ == "__main__":
    sys.exit(main())
