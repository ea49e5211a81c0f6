"""`python -m mnist_exp.reproduce RUN_DIR`: Rerun a recorded run and compare the two (mnist_exp.analysis.reproduce)."""

import sys

if __name__ == "__main__":
    from mnist_exp.analysis.cli import run_tool

    sys.exit(run_tool("python -m mnist_exp.reproduce", "mnist_exp.analysis.reproduce"))
else:
    from mnist_exp.analysis import reproduce

    sys.modules[__name__] = reproduce  # one module under both names
