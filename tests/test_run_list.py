"""`python -m mnist_exp.runs` as people use it: a width that fits, the keys that vary, filters,
export, numbers as written, no settings of the other architecture."""

import io
import json

import pandas as pd
import pytest

from helpers import run_cli
from mnist_exp.analysis import results, run_list, varying
from report_runs import make_run


@pytest.fixture(scope="module")
def outputs(mnist_dir, tmp_path_factory):
    """Three real runs: the default MLP, one with lr=1e-05 tagged 'small', and a small CNN."""
    root = tmp_path_factory.mktemp("outputs")
    make_run(root, folder="a")
    make_run(root, "lr=1e-05", "name=slow", "tags=[small,tiny]", folder="b")
    make_run(root, "arch=cnn", "channels=[2]", "dense_width=8", "name=conv", folder="cnn")
    return root


def runs_list(outputs, *args, columns=300):
    result = run_cli([str(outputs), *args, "--width", str(columns)], cwd=outputs, module="mnist_exp.runs")
    assert result.returncode == 0, result.stderr
    return result.stdout


def parsed(text: str) -> pd.DataFrame:
    """The table's lines as columns by the header's positions (cells may be blank)."""
    header, *lines = text.split("\n(")[0].splitlines()
    names = header.split()
    starts = [header.index(f" {n} ") + 1 if i else 0 for i, n in enumerate(names[:-1])] + [header.rindex(names[-1])]
    bounds = list(zip(starts, starts[1:] + [None]))
    return pd.DataFrame([[line[a:b].strip() for a, b in bounds] for line in lines], columns=names)


@pytest.mark.slow
def test_the_list_shows_the_varying_keys_with_small_rates_as_written(outputs):
    table = parsed(runs_list(outputs))
    assert {"lr", "arch", "tags"} <= set(table.columns)
    assert not {"seed", "data.dir", "weight_decay"} & set(table.columns)  # equal in all three
    mlps = parsed(runs_list(outputs, "--where", "arch=mlp"))
    assert not {"arch", "channels", "kernel_size", "hidden_size", "batch_size"} & set(mlps.columns)
    assert not [c for c in table.columns if "md5" in c or c.startswith("data.")]
    assert table.set_index("name")["lr"].to_dict() == {"single": "0.005", "slow": "1e-05", "conv": "0.001"}


@pytest.mark.slow
def test_an_mlp_row_shows_no_channels_and_a_cnn_row_no_hidden_size(outputs):
    table = parsed(runs_list(outputs)).set_index("name")
    assert table.loc["conv", "channels"] == "2" and table.loc["slow", "channels"] == ""
    assert table.loc["conv", "hidden_size"] == "" and table.loc["slow", "hidden_size"] == "100"
    assert table.loc["conv", "hidden_layers"] == "" and table.loc["conv", "kernel_size"] != ""


@pytest.mark.parametrize("columns", [80, 100, 140])
def test_the_table_fits_the_terminal_and_says_what_it_left_out(outputs, columns):
    text = runs_list(outputs, columns=columns)
    assert max(map(len, text.splitlines())) <= columns, text
    assert text.splitlines()[0].split()[:3] == ["when", "name", "status"] and "run_dir" in text.splitlines()[0]
    if columns < 120:
        assert "(left out to fit" in text and "--format csv has them all)" in " ".join(text.split())


def test_md5_columns_never_count_as_varying_keys(outputs):
    runs = results.load_runs(outputs)
    runs.loc[0, "data.test_images.md5"] = "0" * 32
    assert not [k for k in varying.varying_keys(runs) if "md5" in k or k.endswith(".name") and k != "data.name"]


@pytest.mark.parametrize("args, names", [
    (["--tag", "small"], ["slow"]), (["--tag", "small", "--tag", "nope"], []), (["--name", "co"], ["conv"]),
    (["--name", "s*"], ["single", "slow"]), (["--where", "lr>0.0005"], ["single", "conv"]), (["--where", "lr<=1e-4"], ["slow"]),
    (["--where", "arch=cnn"], ["conv"]), (["--where", "arch!=cnn", "--where", "lr>0.001"], ["single"]),
    (["--where", "test_acc>=0"], ["single", "slow", "conv"])])
def test_filters_by_tag_name_and_condition(outputs, args, names):
    text = runs_list(outputs, *args)
    if not names:
        assert "no runs under" in text and "that match" in text
        return
    assert sorted(parsed(text)["name"]) == sorted(names)


@pytest.mark.parametrize("condition, says", [("lr>fast", "lr is a number"), ("colour=red", "colour is not a config"),
                                             ("lr", "not KEY OP VALUE"), ("arch>cnn", "arch is not a number")])
def test_a_bad_condition_is_one_line_exit_2(outputs, condition, says):
    result = run_cli([str(outputs), "--where", condition], cwd=outputs, module="mnist_exp.runs")
    assert result.returncode == 2 and says in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""


@pytest.mark.slow
def test_csv_and_json_export_every_column_whole(outputs):
    csv = pd.read_csv(io.StringIO(runs_list(outputs, "--format", "csv", columns=40)))
    records = json.loads(runs_list(outputs, "--format", "json"))
    assert len(csv) == len(records) == 3
    assert list(csv.columns) == list(records[0]) and "run_dir" in csv.columns and "best_acc" in csv.columns
    assert sorted(csv["lr"]) == [1e-05, 0.001, 0.005]
    assert sorted(r["run_dir"] for r in records) == sorted(str((outputs / d).resolve()) for d in ("a", "b", "cnn"))
    empty = runs_list(outputs, "--format", "json", "--tag", "nope")
    assert json.loads(empty) == []


def test_fit_cuts_long_cells_in_the_middle_and_keeps_run_dirs_whole():
    text = pd.DataFrame({"when": ["2026-12-03 10:00:00"], "name": ["n"], "status": ["completed"],
                         "tags": ["a-very-long-tag-that-goes-on-and-on"], "test_acc": ["0.9"],
                         "run_dir": ["outputs/2026-12-03/10-00-00.000000"]})
    lines = run_list.fit(text, 110).splitlines()
    assert "…" in lines[1] and lines[1].endswith("outputs/2026-12-03/10-00-00.000000")


@pytest.mark.parametrize("module", ["mnist_exp.runs", "mnist_exp.report", "mnist_exp.diff",
                                    "mnist_exp.reproduce"])
def test_the_readme_documents_every_option_of_the_result_tools(module, tmp_path):
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    result = run_cli(["--help"], cwd=tmp_path, module=module)
    assert result.returncode == 0, result.stderr
    assert f"python -m {module}" in readme
    for option in set(re.findall(r"(?<![\w-])--[a-z][a-z-]+", result.stdout)) - {"--help"}:
        assert option in readme, option
