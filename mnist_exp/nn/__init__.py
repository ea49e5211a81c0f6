"""The NumPy networks: the walkthrough's exact reference path (reference, reference_epoch),
the general network as a stack of layers (layers, mlp), losses, optimisers, BLAS shortcuts,
and the models the training loop drives (models).

Imports: mnist_exp.errors and mnist_exp.data (the Split a model trains on); never the config
(runner/networks.py builds a model from one), runner or analysis.
"""
