"""`python -m mnist_exp.summarize`: Rebuild a sweep's summary table and figures (mnist_exp.analysis.summarize)."""

import sys

if __name__ == "__main__":
    from mnist_exp.analysis.cli import run_tool

    sys.exit(run_tool("mnist_exp.summarize", "mnist_exp.analysis.summarize"))
else:
    from mnist_exp.analysis import summarize

    sys.modules[__name__] = summarize  # one module under both names
