"""`python -m mnist_exp.diff RUN_A RUN_B`: Two runs' differing config keys and metric deltas (mnist_exp.analysis.diff)."""

import sys

if __name__ == "__main__":
    from mnist_exp.analysis.cli import run_tool

    sys.exit(run_tool("python -m mnist_exp.diff", "mnist_exp.analysis.diff"))
else:
    from mnist_exp.analysis import diff

    sys.modules[__name__] = diff  # one module under both names
