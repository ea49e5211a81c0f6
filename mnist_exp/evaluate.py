"""`python -m mnist_exp.evaluate`: Score a run's saved model again (mnist_exp.analysis.evaluate)."""

import sys

from mnist_exp.analysis import evaluate

if __name__ == "__main__":
    sys.exit(evaluate.main())
else:
    sys.modules[__name__] = evaluate  # one module under both names
