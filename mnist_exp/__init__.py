"""mnist_exp: config-driven experiments with a from-scratch NumPy MLP on MNIST.

Run `python -m mnist_exp --help` for the config keys.
"""

__version__ = "0.1.0"
