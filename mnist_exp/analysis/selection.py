"""Which metric chooses among a sweep's runs, for the summary, the console and the report alike.

Validation accuracy wherever the runs have a validation split: choosing by test accuracy tunes
on the test set, and the number reported for the chosen run is then no longer an estimate. A
sweep without a validation split can only be judged by test accuracy, and says so.
"""

from typing import Optional

import pandas as pd

VALIDATION = "final_val_accuracy"  # also what mnist_exp's Optuna sweeper maximises (launchers/optuna_trial.py)
TEST = "final_test_accuracy"
WORDS = {VALIDATION: "validation accuracy", TEST: "test accuracy (no validation split)"}
AXIS = {VALIDATION: "final val accuracy", TEST: "final test accuracy"}


def objective_metric(runs: pd.DataFrame, search: bool = False) -> str:
    """The column that judges these runs: a search's is always its objective's."""
    if search or (VALIDATION in runs and runs[VALIDATION].notna().any()):
        return VALIDATION
    return TEST


def objective(runs: pd.DataFrame, metric: str) -> pd.Series:
    """Each run's value of `metric`, for completed runs only: a pruned, failed or diverged run
    is never the best one, whatever number its last epoch left."""
    return pd.to_numeric(runs[metric], errors="coerce").where(runs["status"] == "completed")


def best_line(table: pd.DataFrame, keys) -> Optional[str]:
    """`best by validation accuracy: job 3 (lr=0.01 hidden_size=200): val 0.9412, test 0.9380`,
    from a sweep table with objective columns; None when no job completed."""
    values = pd.to_numeric(table["objective"], errors="coerce")
    if values.notna().sum() == 0:
        return None
    row = table.loc[values.idxmax()]
    from mnist_exp.analysis.sweep_figures import run_label

    setting = run_label(row, keys)
    val = f"val {row[VALIDATION]:.4f}, " if VALIDATION in row and pd.notna(row[VALIDATION]) else ""
    return f"best by {WORDS[row['objective_metric']]}: job {row['job']} ({setting}): {val}test {row[TEST]:.4f}"

