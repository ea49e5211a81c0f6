"""The data pipeline: IDX files, downloads from mirrors, the verified cache, and the
scaled splits a model trains on.

Imports: mnist_exp.config, mnist_exp.errors, mnist_exp.files; never nn, runner or analysis.
"""
