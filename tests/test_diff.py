"""`python -m mnist_exp.diff RUN_A RUN_B`: the differing config keys and the metric deltas."""

import shutil

import pytest

from helpers import run_cli
from mnist_exp.analysis import diff, results
from report_runs import make_run


@pytest.fixture(scope="module")
def pair(mnist_dir, tmp_path_factory):
    """Two real MLP runs that differ in lr only (1e-05 against the default), and a CNN run."""
    root = tmp_path_factory.mktemp("diff")
    return (make_run(root, folder="a"), make_run(root, "lr=1e-05", "name=other", folder="b"),
            make_run(root, "arch=cnn", "channels=[2]", "dense_width=8", folder="cnn"))


def rows(output: str, section: str) -> dict:
    """The rows of one table of diff's output, first word -> the other cells."""
    lines = output.split("\n\n")[1 if section == "config" else 2].splitlines()
    assert lines[0].split()[0] == section
    return {line.split()[0]: line.split()[1:] for line in lines[1:]}


@pytest.mark.slow
def test_diff_shows_only_the_keys_that_differ_and_the_metric_deltas(pair, tmp_path):
    a, b, _ = pair
    result = run_cli([str(a), str(b)], cwd=tmp_path, module="mnist_exp.diff")
    assert result.returncode == 0, result.stderr
    assert rows(result.stdout, "config") == {"lr": ["0.005", "1e-05"]}  # name, dirs and equal keys hidden
    metrics = rows(result.stdout, "metric")
    runs = results.load_runs([a, b]).set_index("run_dir")["final_test_accuracy"]
    left, right, delta = map(float, metrics["final_test_accuracy"])
    assert (left, right) == pytest.approx((runs[str(a)], runs[str(b)]), abs=1e-4)
    assert delta == pytest.approx(right - left, abs=1e-4)
    assert metrics["status"] == ["completed", "completed"] and metrics["epochs_run"] == ["2", "2", "+0"]


@pytest.mark.slow
def test_a_network_key_of_the_other_architecture_shows_blank(pair, tmp_path):
    a, _, cnn = pair
    result = run_cli([str(a), str(cnn)], cwd=tmp_path, module="mnist_exp.diff")
    assert result.returncode == 0, result.stderr
    config = rows(result.stdout, "config")
    assert config["arch"] == ["mlp", "cnn"] and config["channels"] == ["2"] and config["hidden_size"] == ["100"]
    assert config["dense_width"] == ["8"] and "hidden_layers" in config


def test_a_different_data_set_is_named(pair):
    a, b, _ = pair
    run_a, run_b = results.load_runs([a, b]).iloc[0], results.load_runs([a, b]).iloc[1].copy()
    run_b["data.name"] = "fashion_mnist"
    assert ("data.name", "mnist", "fashion_mnist") in diff.config_diff(run_a, run_b)
    run_b["data.name"], run_b["data.test_images.md5"] = "mnist", "0" * 32
    assert ("data files (MD5)", "", "differ") in diff.config_diff(run_a, run_b)


@pytest.mark.slow
@pytest.mark.parametrize("which, message", [("outputs", "holds 3 runs, not one"), ("missing", "no such run"),
                                            ("empty", "holds 0 runs"), ("damaged", "summary.json cannot be read")])
def test_a_path_that_is_not_one_run_is_one_line_exit_2(pair, tmp_path, which, message):
    a, b, _ = pair
    if which == "damaged":
        shutil.copytree(a, tmp_path / "damaged")
        (tmp_path / "damaged" / "summary.json").write_text("{not json")
    target = {"outputs": a.parent, "missing": tmp_path / "missing", "empty": tmp_path / "empty",
              "damaged": tmp_path / "damaged"}[which]
    (tmp_path / "empty").mkdir()
    result = run_cli([str(target), str(b)], cwd=tmp_path, module="mnist_exp.diff")
    assert result.returncode == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""
