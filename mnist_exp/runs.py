"""`python -m mnist_exp.runs`: List runs, newest first (mnist_exp.analysis.run_list)."""

import sys

if __name__ == "__main__":
    from mnist_exp.analysis.cli import run_tool

    sys.exit(run_tool("python -m mnist_exp.runs", "mnist_exp.analysis.run_list"))
else:
    from mnist_exp.analysis import run_list

    sys.modules[__name__] = run_list  # one module under both names
