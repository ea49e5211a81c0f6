"""What the user types is what runs, or one line says why not: names and tags that stay inside
outputs/, presets that do not overrule a typed key, keys the chosen network does not use, and
Hydra's own flags for another config."""

import json
from pathlib import Path

import pytest
import yaml

from helpers import run_cli

TINY = ["train_samples=20", "test_samples=20", "epochs=1"]


def everything(root: Path) -> list:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def one_line_error(result, code=2) -> str:
    assert result.returncode == code, result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mnist_exp: error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    return lines[0]


@pytest.mark.parametrize("override", ["name=../x", "name=a/b", "name=.", "name=..", "name=x/../../../victim", "name=x/../../../../victim",
                                      "name=", "name=-x", "name='a\u2215b'", "name=${oc.env:RUN_NAME}",
                                      "tags=[../x]", "tags=[ok,a/b]", "tags=[..]", "+tags=[x/y]"])
def test_a_name_or_tag_that_is_not_a_plain_name_leaves_nothing_anywhere(override, tmp_path):
    """Checked before the run directory is worked out: no TIME_x folder, no lock in an existing dir."""
    work = tmp_path / "work"
    (work / "outputs").mkdir(parents=True)
    (tmp_path / "victim").mkdir()
    (tmp_path / "victim" / "kept").write_text("mine")
    before = everything(tmp_path)
    error = one_line_error(run_cli([override, *TINY], cwd=work, env={"RUN_NAME": "x/../../../../victim"}))
    assert "is not a plain name" in error and ("name=" in error or "tags" in error)
    assert everything(tmp_path) == before


@pytest.mark.parametrize("override, shown, hint", [
    ("name=true", "true", "name=\"'true'\""), ("name=1e5", "1e5", "name=\"'1e5'\""),
    ("name=2024", "2024", "name=\"'2024'\""), ("tags=[a,1]", "1", "'1'"), ("tags=[false]", "false", "'false'"),
    ("-m name=a,3.5", "3.5", "'3.5'"), ("-m tags=[a],[b,7]", "7", "'7'"),
])
def test_a_name_or_tag_hydra_reads_as_a_number_or_boolean_is_refused_with_the_quoting_hint(
        override, shown, hint, tmp_path):
    args = [*override.split(), *TINY, f"hydra.sweep.dir={tmp_path / 's'}"]
    error = one_line_error(run_cli(args, cwd=tmp_path))
    assert override.split()[-1].split("=")[0] in error and shown in error and "not text" in error and hint in error, error
    assert not (tmp_path / "outputs").exists() and not (tmp_path / "s").exists()


def test_a_quoted_name_is_taken_as_typed(mnist_dir, tmp_path):
    result = run_cli(["name='1e5'", "tags=['2024',x]", *TINY], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (run_dir,) = (tmp_path / "outputs").glob("*/*_1e5")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["name"] == "1e5" and summary["tags"] == ["2024", "x"]


@pytest.mark.parametrize("flags", [["--config-path", "{run}/.hydra", "--config-name", "config"],
                                   ["--config-path={run}/.hydra", "--config-name=config"], ["-cp", "{run}/.hydra"],
                                   ["-cn", "config"], ["--config-name", "other"], ["--config-p", "{run}"],
                                   ["-cp={run}/.hydra", "-cn=config"]])
def test_hydras_flags_for_another_config_are_refused_in_one_line_with_nothing_written(flags, tmp_path):
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text("lr: 0.1\n")
    before = everything(tmp_path)
    error = one_line_error(run_cli([f.format(run=run) for f in flags], cwd=tmp_path))
    assert "resume=" in error and "overrides.yaml" in error
    assert everything(tmp_path) == before


@pytest.mark.parametrize("flags", [["--cfg", "job"], ["--cfg=job"], ["-c", "job"], ["--cfg", "all"],
                                   ["--cfg", "hydra"], ["--cfg", "job", "--resolve"]])
@pytest.mark.parametrize("override, message", [("lr=-1", "lr=-1.0 is out of range"),
                                               ("hidden_size=1000000", "needs at least 61.1 GiB of memory"),
                                               ("+lerning_rate=1", "unknown config key 'lerning_rate'"),
                                               ("name=a/b", "is not a plain name"),
                                               ("name=1e5", "is read as a number")])
def test_cfg_refuses_what_a_run_refuses(flags, override, message, tmp_path):
    error = one_line_error(run_cli([*flags, override], cwd=tmp_path))
    assert message in error
    assert everything(tmp_path) == []


def test_cfg_of_a_valid_config_still_prints_it(tmp_path):
    result = run_cli(["--cfg", "job", "lr=0.01", "name=x", "experiment=best_cnn"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    printed = yaml.safe_load(result.stdout)
    assert printed["lr"] == 0.01 and printed["name"] == "x" and printed["arch"] == "cnn"


def test_cfg_with_multirun_is_one_line(tmp_path):
    assert "--multirun and --cfg cannot be given together" in one_line_error(
        run_cli(["-m", "--cfg", "job", "lr=0.1,0.2"], cwd=tmp_path))
