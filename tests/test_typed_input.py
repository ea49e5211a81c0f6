"""What the user types is what runs, or one line says why not: names and tags that stay inside
outputs/, presets that do not overrule a typed key, keys the chosen network does not use, an
empty resume=, --cfg checked as a run, and Hydra's own flags for another config."""

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


@pytest.mark.parametrize("override", ["name=../x", "name=a/b", "name=.", "name=..", "name=x/../../../victim",
                                      "name=x/../../../../victim", "name=", "name=-x", "name='a\u2215b'",
                                      "name=${oc.env:RUN_NAME}", "tags=[../x]", "tags=[ok,a/b]", "tags=[..]",
                                      "+tags=[x/y]"])
def test_a_name_or_tag_that_is_not_a_plain_name_leaves_nothing_anywhere(override, tmp_path, cli):
    """Checked before the run directory is worked out: no TIME_x folder, no lock in an existing dir."""
    work = tmp_path / "work"
    (work / "outputs").mkdir(parents=True)
    (tmp_path / "victim").mkdir()
    (tmp_path / "victim" / "kept").write_text("mine")
    before = everything(tmp_path)
    error = one_line_error(cli([override, *TINY], cwd=work, env={"RUN_NAME": "x/../../../../victim"}))
    assert "is not a plain name" in error and ("name=" in error or "tags" in error)
    assert everything(tmp_path) == before


@pytest.mark.parametrize("override, shown, hint", [
    ("name=true", "true", "name=\"'true'\""), ("name=1e5", "1e5", "name=\"'1e5'\""),
    ("name=2024", "2024", "name=\"'2024'\""), ("tags=[a,1]", "1", "'1'"), ("tags=[false]", "false", "'false'"),
    ("-m name=a,3.5", "3.5", "'3.5'"), ("-m tags=[a],[b,7]", "7", "'7'"),
])
def test_a_name_or_tag_hydra_reads_as_a_number_or_boolean_is_refused_with_the_quoting_hint(
        override, shown, hint, tmp_path, cli):
    args = [*override.split(), *TINY, f"hydra.sweep.dir={tmp_path / 's'}"]
    error = one_line_error(cli(args, cwd=tmp_path))
    assert override.split()[-1].split("=")[0] in error and shown in error, error
    assert "not text" in error and hint in error, error
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
def test_hydras_flags_for_another_config_are_refused_in_one_line_with_nothing_written(flags, tmp_path, cli):
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text("lr: 0.1\n")
    before = everything(tmp_path)
    error = one_line_error(cli([f.format(run=run) for f in flags], cwd=tmp_path))
    assert "resume=" in error and "overrides.yaml" in error
    assert everything(tmp_path) == before


@pytest.mark.parametrize("flags", [["--cfg", "job"], ["--cfg=hydra"], ["-c", "all", "--resolve"]])
@pytest.mark.parametrize("override, message", [("lr=-1", "lr=-1.0 is out of range"),
                                               ("hidden_size=1000000", "needs at least 61.1 GiB of memory"),
                                               ("+lerning_rate=1", "unknown config key 'lerning_rate'"),
                                               ("name=a/b", "is not a plain name"),
                                               ("name=1e5", "is read as a number")])
def test_cfg_refuses_what_a_run_refuses(flags, override, message, tmp_path, cli):
    error = one_line_error(cli([*flags, override], cwd=tmp_path))
    assert message in error
    assert everything(tmp_path) == []


def test_cfg_of_a_valid_config_still_prints_it(tmp_path):
    result = run_cli(["--cfg", "job", "lr=0.01", "name=x", "experiment=best_cnn"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    printed = yaml.safe_load(result.stdout)
    assert printed["lr"] == 0.01 and printed["name"] == "x" and printed["arch"] == "cnn"


def test_cfg_with_multirun_is_one_line(tmp_path, cli):
    assert "--multirun and --cfg cannot be given together" in one_line_error(
        cli(["-m", "--cfg", "job", "lr=0.1,0.2"], cwd=tmp_path))


CONF = Path(__file__).resolve().parents[1] / "conf"
PRESETS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("arch", ["mlp", "cnn"])
@pytest.mark.parametrize("preset_first", [True, False])
@pytest.mark.parametrize("flags", [["--cfg", "job"], TINY])
def test_a_preset_for_another_network_than_the_typed_arch_is_refused(preset, arch, preset_first, flags, tmp_path, cli):
    preset_arch = yaml.safe_load((CONF / "experiment" / f"{preset}.yaml").read_text()).get("arch")
    assert preset_arch in ("mlp", "cnn"), f"{preset}.yaml must say which network it is for"
    if preset_arch == arch or flags == TINY and preset_first:  # the same case as the run below, once is enough
        return
    pair = [f"experiment={preset}", f"arch={arch}"]
    error = one_line_error(cli([*(pair if preset_first else pair[::-1]), *flags], cwd=tmp_path))
    assert f"experiment={preset}" in error and f"arch={arch}" in error and f"arch={preset_arch}" in error
    assert everything(tmp_path) == []


def other_value(key, value):
    from mnist_exp.config import CHOICES

    if key in CHOICES:
        return next(v for v in CHOICES[key] if v != value)
    if isinstance(value, bool):
        return str(not value).lower()
    if isinstance(value, list):
        return "[8]"
    return str(value + 1) if isinstance(value, int) else str(value / 2)


@pytest.mark.parametrize("preset", PRESETS)
def test_every_key_a_preset_sets_is_overridden_by_the_typed_value_in_either_order(preset):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from mnist_exp.config import CONF_DIR

    values = yaml.safe_load((CONF / "experiment" / f"{preset}.yaml").read_text())
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        for key, value in values.items():
            if key == "arch":  # a config group: see the test above
                continue
            typed = f"{key}={other_value(key, value)}"
            for overrides in ([f"experiment={preset}", typed], [typed, f"experiment={preset}"]):
                cfg = OmegaConf.to_container(compose("config", overrides=overrides))
                assert str(cfg[key]).replace(" ", "").lower() == typed.split("=")[1].lower(), (overrides, cfg[key])


@pytest.mark.parametrize("args, key, network", [
    (["arch=cnn", "hidden_size=50"], "hidden_size", "mlp"), (["arch=cnn", "hidden_layers=2"], "hidden_layers", "mlp"),
    (["experiment=best_cnn", "hidden_size=100"], "hidden_size", "mlp"), (["channels=[8]"], "channels", "cnn"),
    (["arch=mlp", "kernel_size=3"], "kernel_size", "cnn"), (["pool=1"], "pool", "cnn"),
    (["dense_width=64"], "dense_width", "cnn"), (["experiment=best_mlp", "++channels=[4,4]"], "channels", "cnn"),
])
@pytest.mark.parametrize("flags", [[], ["--cfg", "job"]])
def test_a_typed_key_the_chosen_network_does_not_use_is_refused(args, key, network, flags, tmp_path, cli):
    error = one_line_error(cli([*args, *TINY, *flags], cwd=tmp_path))
    assert f"{key} is for arch={network}" in error, error
    assert everything(tmp_path) == []


def test_a_sweep_not_over_arch_refuses_an_unused_key_before_it_starts(tmp_path, cli):
    error = one_line_error(cli(["-m", "arch=cnn", "lr=0.1,0.2", "hidden_size=50", *TINY,
                                    f"hydra.sweep.dir={tmp_path / 's'}"], cwd=tmp_path))
    assert "hidden_size is for arch=mlp" in error and not (tmp_path / "s").exists()


@pytest.mark.slow
def test_a_sweep_over_arch_keeps_each_networks_unused_keys_out_of_its_record(mnist_dir, tmp_path):
    sweep = tmp_path / "s"
    result = run_cli(["-m", "arch=mlp,cnn", "hidden_size=30", "channels=[4]", "train_samples=64", "test_samples=20",
                      "epochs=1", f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    mlp, cnn = (json.loads((sweep / n / "summary.json").read_text())["config"] for n in "01")
    assert (mlp["arch"], mlp["hidden_size"], mlp["channels"]) == ("mlp", 30, [16, 32])
    assert (cnn["arch"], cnn["hidden_size"], cnn["channels"]) == ("cnn", 100, [4])
    log = (sweep / "1" / "mnist_exp.log").read_text()
    run_line = log.split("run ")[1].split("\n")[0]
    assert "hidden_size=30 is not used by arch=cnn" in log and "hidden_size=30" not in run_line


@pytest.mark.parametrize("override", ["resume=", "resume=''", "resume=' '", "resume=${oc.env:UNSET_RUN_DIR,''}"])
def test_an_empty_resume_is_refused_rather_than_starting_a_fresh_run(override, tmp_path, cli):
    error = one_line_error(cli([override, *TINY], cwd=tmp_path))
    assert "resume is empty" in error
    assert everything(tmp_path) == []


@pytest.fixture(scope="module")
def stopped_run(mnist_dir, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("stopped") / "run"
    result = run_cli([*TINY, f"hydra.run.dir={run_dir}"], cwd=run_dir.parent)
    assert result.returncode == 0, result.stderr
    return run_dir


@pytest.mark.parametrize("preset", ["experiment=best_mlp", "experiment=tutorial", "+search=optuna"])
@pytest.mark.parametrize("flags", [[], ["--cfg", "job"]])
def test_a_preset_given_with_resume_is_refused(preset, flags, stopped_run, tmp_path, cli):
    before = {p: p.read_bytes() for p in stopped_run.rglob("*") if p.is_file() and p.name != ".mnist_exp.lock"}
    error = one_line_error(cli([f"resume={stopped_run}", "epochs=2", preset, *flags], cwd=tmp_path))
    assert f"{preset.lstrip('+')} cannot be given with resume=" in error
    assert {p: p.read_bytes() for p in before} == before and everything(tmp_path) == []


def test_resume_null_is_no_resume(mnist_dir, tmp_path):
    result = run_cli(["resume=null", *TINY], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "outputs").glob("*/*/summary.json"))) == 1


@pytest.mark.parametrize("override", ["tags=[[a]]", "tags=[{a:1}]", "-m tags=[x],[[y]]"])
def test_a_tag_that_is_a_list_is_not_text(override, tmp_path, cli):
    error = one_line_error(cli([*override.split(), *TINY, f"hydra.sweep.dir={tmp_path / 's'}"], cwd=tmp_path))
    assert "not text" in error and "tags=[a,b] is two tags" in error and everything(tmp_path) == []


@pytest.mark.parametrize("flags", [["--help"], ["--cfg", "job"]])
def test_help_or_cfg_into_a_closed_pipe_ends_quietly(flags, tmp_path):
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "mnist_exp", *flags], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # as `| head -0` does, before the program writes
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 141 and stderr == "", stderr
    assert everything(tmp_path) == []


def test_cfg_finds_the_users_own_presets_in_a_config_dir(tmp_path):
    (tmp_path / "mine" / "experiment").mkdir(parents=True)
    (tmp_path / "mine" / "experiment" / "quick.yaml").write_text("# @package _global_\narch: mlp\nlr: 0.2\n")
    shown = run_cli(["--config-dir", "mine", "--cfg", "job", "experiment=quick"], cwd=tmp_path)
    assert shown.returncode == 0 and yaml.safe_load(shown.stdout)["lr"] == 0.2, shown.stderr
    assert "lr=-1.0 is out of range" in one_line_error(
        run_cli(["-cd", "mine", "--cfg", "job", "experiment=quick", "lr=-1"], cwd=tmp_path))


@pytest.mark.parametrize("args, message", [(["resume="], "resume is empty"),
                                           (["name=${oc.env:RUN_NAME}"], "is not a plain name"),
                                           (["tags=[${oc.env:RUN_NAME}]"], "is not a plain name")])
def test_a_sweep_refuses_an_empty_resume_or_a_path_for_a_name_before_it_starts(args, message, tmp_path, cli):
    error = one_line_error(cli(["-m", "lr=0.1,0.2", *args, *TINY, f"hydra.sweep.dir={tmp_path / 's'}",
                                    "hydra.sweep.subdir=${hydra.job.num}_${name}"], cwd=tmp_path,
                                   env={"RUN_NAME": "../../escaped"}))
    assert message in error and everything(tmp_path) == []


@pytest.mark.slow
def test_an_optuna_search_over_arch_takes_a_key_of_one_network(mnist_dir, tmp_path):
    pytest.importorskip("optuna")
    sweep = tmp_path / "s"
    result = run_cli(["-m", "+search=optuna", "hydra.sweeper.n_trials=2",
                      "+hydra.sweeper.params.arch='choice(mlp,cnn)'",
                      "channels=[4]", "train_samples=64", "test_samples=20", "epochs=1", f"hydra.sweep.dir={sweep}"],
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for summary in sweep.glob("*/summary.json"):
        config = json.loads(summary.read_text())["config"]
        assert config["channels"] == ([4] if config["arch"] == "cnn" else [16, 32])
