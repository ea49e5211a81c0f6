"""`python -m mnist_exp.evaluate`: Score a run's saved model again (mnist_exp.analysis.evaluate)."""

import sys

if __name__ == "__main__":
    from mnist_exp.analysis.cli import run_tool

    sys.exit(run_tool("mnist_exp.evaluate", "mnist_exp.analysis.evaluate"))
else:
    from mnist_exp.analysis import evaluate

    sys.modules[__name__] = evaluate  # one module under both names
