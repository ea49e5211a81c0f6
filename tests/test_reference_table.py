"""The default run reproduces the walkthrough's published table, on the real MNIST files."""

import pandas as pd
import pytest

from helpers import run_cli

# epoch: (train loss, train acc, test loss, test acc), from ../shared/docs/tutorial-algorithm.md
PUBLISHED = {
    0: (0.898, 0.397, 0.680, 0.582), 1: (0.656, 0.633, 0.607, 0.641),
    2: (0.592, 0.680, 0.569, 0.679), 3: (0.556, 0.700, 0.541, 0.708),
    4: (0.534, 0.732, 0.526, 0.729), 5: (0.515, 0.715, 0.500, 0.739),
    6: (0.495, 0.748, 0.487, 0.753), 7: (0.483, 0.769, 0.486, 0.747),
    8: (0.473, 0.776, 0.473, 0.752), 9: (0.460, 0.788, 0.462, 0.762),
    10: (0.465, 0.769, 0.462, 0.767), 11: (0.443, 0.801, 0.456, 0.775),
    12: (0.448, 0.795, 0.455, 0.772), 13: (0.438, 0.787, 0.453, 0.778),
    14: (0.446, 0.791, 0.450, 0.779), 15: (0.441, 0.788, 0.452, 0.772),
    16: (0.437, 0.786, 0.453, 0.772), 17: (0.436, 0.794, 0.449, 0.778),
    18: (0.433, 0.801, 0.450, 0.774), 19: (0.429, 0.785, 0.436, 0.784),
}


@pytest.fixture(scope="module")
def default_run(mnist_dir, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("default") / "run"
    result = run_cli([f"hydra.run.dir={run_dir}"], cwd=run_dir.parent)
    assert result.returncode == 0, result.stderr
    return run_dir, result


@pytest.mark.slow
def test_default_run_matches_the_published_table_at_every_epoch(default_run):
    metrics = pd.read_csv(default_run[0] / "metrics.csv")
    assert metrics["epoch"].tolist() == list(range(20))
    for row in metrics.itertuples():
        train_loss, train_acc, test_loss, test_acc = PUBLISHED[row.epoch]
        assert round(row.train_loss, 3) == train_loss, row
        assert round(row.test_loss, 3) == test_loss, row
        # accuracies are whole counts of 1000 samples: compare them exactly
        assert round(row.train_accuracy * 1000) == round(train_acc * 1000), row
        assert round(row.test_accuracy * 1000) == round(test_acc * 1000), row


def test_default_run_prints_one_compact_line_per_epoch(default_run):
    lines = [line for line in default_run[1].stdout.splitlines() if line.startswith("epoch")]
    assert len(lines) == 20
    assert lines[0].startswith("epoch  0/19  train loss 0.8984 acc 0.397  test loss 0.6805 acc 0.582")
    assert lines[-1].startswith("epoch 19/19  train loss 0.4291 acc 0.785  test loss 0.4361 acc 0.784")
