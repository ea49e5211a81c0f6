"""Hydra configs of mnist_exp; a package only so that installs ship it as mnist_exp.conf."""
