"""`from mnist_exp import results`: runs as pandas DataFrames (mnist_exp.analysis.results)."""

import sys

from mnist_exp.analysis import results

sys.modules[__name__] = results  # one module under both names
