"""mnist_exp: config-driven experiments with a from-scratch NumPy MLP on MNIST.

Run `python -m mnist_exp --help` for the config keys.
"""

__version__ = "0.1.0"


def __getattr__(name):
    """`mnist_exp.load_model`, imported on first use: `import mnist_exp` stays light."""
    if name == "load_model":
        from mnist_exp.analysis.trained import load_model

        return load_model
    raise AttributeError(f"module 'mnist_exp' has no attribute {name!r}")
