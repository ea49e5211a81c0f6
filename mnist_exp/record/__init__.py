"""The run record: what a run leaves in its directory, and the one package that writes it.

names (the files), metrics (metrics.csv), arrays (weights.npz), checkpoint (checkpoint.npz),
summary (summary.json: the run's status and provenance, and the records of jobs refused or lost),
extension (a completed run extended into a new directory). Each file is written so a crash loses
nothing already written: rows flushed and synced one by one, whole files replaced atomically.
It imports only what sits below it (config, errors, files, nn's array names).
"""

from mnist_exp.record.arrays import Check, FileNames, Spec, load_weights, read_specs, renamed, save_weights
from mnist_exp.record.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from mnist_exp.record.extension import copy_for_extension, discard_extension
from mnist_exp.record.metrics import COLUMNS, VAL_COLUMNS, EpochMetrics, MetricsWriter, Tally, find_row, read_metrics
from mnist_exp.record.names import (CHECKPOINT, CONFUSION, CONFUSION_PNG, CURVES, METRICS, MISTAKES_PNG, MODEL_CARD,
                                    SUMMARY, WEIGHTS)
from mnist_exp.record.summary import save_json

__all__ = ["Check", "FileNames", "Spec", "load_weights", "read_specs", "renamed", "save_weights", "Checkpoint", "load_checkpoint",
           "save_checkpoint", "copy_for_extension", "discard_extension", "COLUMNS", "VAL_COLUMNS", "EpochMetrics",
           "MetricsWriter", "Tally", "find_row", "read_metrics", "CHECKPOINT", "CONFUSION", "CONFUSION_PNG", "CURVES",
           "METRICS", "MISTAKES_PNG", "MODEL_CARD", "SUMMARY", "WEIGHTS", "save_json"]
