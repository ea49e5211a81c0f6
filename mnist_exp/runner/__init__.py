"""Running an experiment: the training loop, the run record it writes (metrics, checkpoints,
summary, figures, model card), interrupts, memory checks, and the Hydra callbacks that claim
run directories and wrap up sweeps.

Imports: config, errors, files, data, nn; analysis only lazily, for a sweep's summary table.
"""
