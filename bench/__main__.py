"""`python -m bench` (`make bench`): see bench/run.py and docs/performance.md, "Benchmark"."""

import sys

from bench.run import main

if __name__ == "__main__":
    sys.exit(main())
