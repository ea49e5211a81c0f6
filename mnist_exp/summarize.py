"""`python -m mnist_exp.summarize`: Rebuild a sweep's summary table and figures (mnist_exp.analysis.summarize)."""

import sys

from mnist_exp.analysis import summarize

if __name__ == "__main__":
    sys.exit(summarize.main())
else:
    sys.modules[__name__] = summarize  # one module under both names
