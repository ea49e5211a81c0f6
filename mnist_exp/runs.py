"""`python -m mnist_exp.runs`: List runs, newest first (mnist_exp.analysis.run_list)."""

import sys

from mnist_exp.analysis import run_list

if __name__ == "__main__":
    sys.exit(run_list.main())
else:
    sys.modules[__name__] = run_list  # one module under both names
