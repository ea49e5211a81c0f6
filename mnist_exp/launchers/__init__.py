"""Hydra launcher plugins of mnist_exp, installed as `hydra_plugins.mnist_exp_launchers`.

Hydra instantiates launchers only from the `hydra_plugins` namespace package, so this folder
ships under that name (see pyproject.toml); its configs are in conf/hydra/launcher/.
"""
