"""The NumPy networks: the walkthrough's exact reference path (reference, reference_epoch),
the general network as a stack of layers (layers, mlp), losses, optimisers, BLAS shortcuts,
and the models the training loop drives (models).

Imports: mnist_exp.config, mnist_exp.errors and mnist_exp.data (the Split a model trains on);
never runner or analysis.
"""
