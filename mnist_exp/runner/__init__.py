"""Running an experiment: the training loop, the network factory, a run's figures and model card,
interrupts, memory checks, and the Hydra callbacks that claim run directories and wrap up sweeps.
Every file of the run record is written through mnist_exp.record.

Imports: config, errors, files, data, nn, record; analysis only lazily, for a sweep's summary table.
"""
