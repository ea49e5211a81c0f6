"""The config schema (typed dataclasses registered with Hydra) and the value checks on top.

Types are checked by Hydra/OmegaConf when the config is composed; ranges are checked
by `validate`, before any data is read or any training starts.
"""

import math
import re
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, List, Mapping, Optional, Set, Tuple
from urllib.parse import urlsplit

from hydra.core.config_store import ConfigStore

from mnist_exp.errors import ConfigError


@dataclass
class FileSpec:
    name: str = ""  # file name on the mirrors, without .gz
    md5: str = ""  # MD5 of the decompressed bytes, stable whatever gzip made the .gz


@dataclass
class DataConfig:
    name: str = "mnist"
    dir: Optional[str] = None  # None: $MNIST_EXP_DATA_DIR, else a per-user cache
    mirrors: List[str] = field(default_factory=list)  # tried in order
    train_images: FileSpec = field(default_factory=FileSpec)
    train_labels: FileSpec = field(default_factory=FileSpec)
    test_images: FileSpec = field(default_factory=FileSpec)
    test_labels: FileSpec = field(default_factory=FileSpec)
    fallback_dirs: List[str] = field(default_factory=list)  # read-only copies tried before downloading
    timeout: float = 30.0  # seconds to connect, and between bytes received
    deadline: float = 600.0  # seconds one attempt at one file may take in all (a trickling mirror)
    retries: int = 3  # attempts per mirror and file, with exponential backoff (8 s apart at most)


@dataclass
class Config:
    lr: float = 0.005  # the walkthrough's learning rate
    hidden_size: int = 100  # units in the hidden layer
    epochs: int = 20
    train_samples: int = 1000  # the FIRST n training images, as the walkthrough takes them
    test_samples: int = 1000  # the FIRST n test images
    seed: int = 884736743  # seeds the run's only numpy Generator
    # Beyond the walkthrough: each default below is the reference's own choice.
    batch_size: int = 1  # 1: per-sample SGD in order; >1: vectorised mini-batches, reshuffled each epoch
    loss: str = "sse"  # sse (squared error, linear outputs) or cross_entropy (softmax outputs)
    hidden_layers: int = 1  # hidden layers of hidden_size units each
    relu_derivative: str = "reference"  # reference (always 1, the walkthrough's quirk) or correct
    biases: bool = False
    init: str = "reference"  # reference (uniform in [-0.1, 0.1)), he or xavier
    dropout: float = 0.5  # share of hidden units dropped while training; 0 disables
    weight_decay: float = 0.0  # L2 penalty on the weight matrices
    optimizer: str = "sgd"  # sgd, momentum or adam
    momentum: float = 0.9  # for optimizer=momentum
    lr_schedule: str = "constant"  # constant, step (x lr_decay every lr_step epochs) or cosine
    lr_step: int = 10
    lr_decay: float = 0.1
    val_samples: int = 0  # validation images, the ones right after the training ones; 0: none
    early_stopping: int = 0  # stop after this many epochs without a better validation loss; 0: off
    batch_norm: bool = False  # batch normalisation before each hidden ReLU (needs batch_size >= 2)
    dtype: str = "float64"  # or float32, for speed
    # The network: arch=mlp (hidden_size, hidden_layers, batch_norm above) or arch=cnn (these):
    arch: str = "mlp"  # mlp or cnn; arch=cnn also selects conf/arch/cnn.yaml's settings
    channels: List[int] = field(default_factory=lambda: [16, 32])  # cnn: output channels of each convolution
    kernel_size: int = 5  # cnn: convolution kernels are kernel_size x kernel_size (odd: 'same' padding)
    pool: int = 2  # cnn: max pooling over pool x pool windows after each convolution; 1: none
    dense_width: int = 128  # cnn: units of the dense layer after the convolutions
    resume: Optional[str] = None  # a run dir to continue (up to `epochs`) instead of starting anew
    from_run: Optional[str] = None  # a run dir whose recorded config a new run starts from (typed keys change it)
    name: Optional[str] = None  # a name for the run: in its directory's name, summary.json, load_runs, figures
    tags: List[str] = field(default_factory=list)  # labels to find and group runs by (load_runs "tags")
    data: DataConfig = field(default_factory=DataConfig)


# The walkthrough's own keys; the options after them go beyond it; RUN_KEYS say how to run,
# not what the experiment is, and are left out of comparisons.
REFERENCE_KEYS = ("lr", "hidden_size", "epochs", "train_samples", "test_samples", "seed")
RUN_KEYS = ("resume", "from_run", "name", "tags")
DATA_LOCATION = ("dir", "fallback_dirs", "mirrors", "timeout", "deadline", "retries")  # data.*: where, not what
OPTION_KEYS = tuple(f.name for f in fields(Config) if f.name not in REFERENCE_KEYS + RUN_KEYS + ("data",))


NETWORK_KEYS = {"mlp": ("hidden_size", "hidden_layers"),  # the keys that shape one network and not the other
                "cnn": ("channels", "kernel_size", "pool", "dense_width")}


# key -> (check, allowed range as said to the user)
_RANGES = {
    "lr": (lambda v: math.isfinite(v) and v > 0, "a finite number > 0"),
    "hidden_size": (lambda v: v >= 1, "an integer >= 1"),
    "epochs": (lambda v: v >= 1, "an integer >= 1"),
    "train_samples": (lambda v: 1 <= v <= 60000, "an integer from 1 to 60000"),
    "test_samples": (lambda v: 1 <= v <= 10000, "an integer from 1 to 10000"),
    "seed": (lambda v: 0 <= v < 2**63, "an integer from 0 to 2**63-1"),  # 64-bit: pandas, CSV, JSON readers
    "batch_size": (lambda v: 1 <= v <= 60000, "an integer from 1 to 60000"),
    "hidden_layers": (lambda v: 1 <= v <= 16, "an integer from 1 to 16"),
    "dropout": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "weight_decay": (lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0"),
    "momentum": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "lr_step": (lambda v: v >= 1, "an integer >= 1"),
    "lr_decay": (lambda v: 0 < v <= 1, "a number in (0, 1]"),
    "val_samples": (lambda v: 0 <= v < 60000, "an integer from 0 to 59999"),
    "early_stopping": (lambda v: v >= 0, "an integer >= 0"),
    "kernel_size": (lambda v: 1 <= v <= 27 and v % 2 == 1, "an odd integer from 1 to 27"),
    "pool": (lambda v: 1 <= v <= 28, "an integer from 1 to 28"),
    "dense_width": (lambda v: v >= 1, "an integer >= 1"),
    "data.timeout": (lambda v: math.isfinite(v) and v > 0, "a finite number > 0"),
    "data.deadline": (lambda v: math.isfinite(v) and 0 < v <= 86400, "a number of seconds in (0, 86400]"),
    "data.retries": (lambda v: 1 <= v <= 10, "an integer from 1 to 10"),
}


CHOICES = {
    "loss": ("sse", "cross_entropy"),
    "relu_derivative": ("reference", "correct"),
    "init": ("reference", "he", "xavier"),
    "optimizer": ("sgd", "momentum", "adam"),
    "lr_schedule": ("constant", "step", "cosine"),
    "dtype": ("float64", "float32"),
    "arch": ("mlp", "cnn"),
}


def get_key(cfg: Config, key: str):
    """The value at a dotted key, e.g. get_key(cfg, "data.timeout")."""
    value = cfg
    for part in key.split("."):
        value = getattr(value, part)
    return value


def validate(cfg: Config) -> Config:
    """Refuse out-of-range values with one message naming the key and its allowed range."""
    for key, (ok, allowed) in _RANGES.items():
        value = get_key(cfg, key)
        if not ok(value):
            raise ConfigError(f"{key}={value} is out of range: {key} must be {allowed}")
    for key, allowed in CHOICES.items():
        if get_key(cfg, key) not in allowed:
            raise ConfigError(f"{key}={get_key(cfg, key)} is not an option: {key} must be one of {', '.join(allowed)}")
    if cfg.train_samples + cfg.val_samples > 60000:
        raise ConfigError(f"train_samples + val_samples = {cfg.train_samples + cfg.val_samples} is out of range: "
                          "the validation images follow the training ones, so the sum must be <= 60000")
    if cfg.early_stopping and not cfg.val_samples:
        raise ConfigError("early_stopping needs a validation split: set val_samples > 0")
    if cfg.batch_norm and cfg.batch_size < 2:
        raise ConfigError("batch_norm needs batch statistics: set batch_size >= 2")
    if cfg.arch == "cnn":
        _validate_cnn(cfg)
    _validate_data(cfg.data)
    check_names(cfg.name, cfg.tags)
    check_resume(cfg.resume)
    check_from_run(cfg.from_run)
    return cfg


def check_resume(resume: Optional[str]) -> None:
    """resume=$DIR with DIR unset reads as resume=, which would start a fresh run unasked."""
    if resume is not None and not str(resume).strip():
        raise ConfigError("resume is empty (an unset variable?): give the run directory to continue, "
                          "or leave resume out to start a new run")


def check_from_run(from_run: Optional[str]) -> None:
    """from_run=$DIR with DIR unset reads as from_run=: refused rather than run from the defaults."""
    if from_run is not None and not str(from_run).strip():
        raise ConfigError("from_run is empty (an unset variable?): give the run directory to start from, "
                          "or leave from_run out to start from the defaults")


def check_no_preset_with_resume(overrides: List[str]) -> None:
    """A preset's values would be replaced by the resumed run's own, unsaid: refused."""
    keys = {f.name for f in fields(Config)}
    for override in overrides:
        (key,) = typed_keys([override])
        if key not in keys and not key.startswith(("data.", "hydra.")):
            raise ConfigError(f"{override.lstrip('+~')} cannot be given with resume=: a resumed run keeps its own "
                              "settings (only epochs and where the data is read from may be given)")


def check_names(name: Optional[str], tags: List[str]) -> None:
    """A name ends the run directory's name and tags label it: plain names, never paths."""
    if name is not None and not PLAIN_NAME.fullmatch(str(name)):
        raise ConfigError(f"name={str(name)[:60]!r} is not a plain name: it ends the run directory's name, so it "
                          "must be 1-100 letters, digits, '.', '_', '+' or '-', starting with a letter or digit")
    for tag in tags:
        if not PLAIN_NAME.fullmatch(str(tag)):
            raise ConfigError(f"tags: {str(tag)[:60]!r} is not a plain name (1-100 letters, digits, '.', '_', '+' "
                              "or '-', starting with a letter or digit)")


TEXT_KEYS = ("name", "tags")  # text, whatever Hydra's grammar reads in it


def check_typed_names(overrides: List[str]) -> None:
    """`name` and `tags` as typed: each value (of a sweep too) must be text, and a plain name.

    Hydra reads name=true as a boolean and name=1e5 as 100000.0, which the schema would turn
    into "True" and "100000.0": refused, with the quoting that keeps the text as typed. An
    interpolation (${...}) is checked once resolved, by validate.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    for override in OverridesParser.create().parse_overrides([o for o in overrides
                                                               if o.lstrip("+~").startswith(TEXT_KEYS)]):
        key = override.key_or_group
        if key not in TEXT_KEYS or override.is_delete():
            continue
        values = list(override.sweep_iterator()) if override.is_discrete_sweep() else [override.value()]
        for value in values:
            for item in value if key == "tags" and isinstance(value, list) else [value]:
                if isinstance(item, str):
                    if "${" not in item:
                        check_names(item, []) if key == "name" else check_names(None, [item])
                elif isinstance(item, (list, dict)):
                    raise ConfigError(f"{key}: {item} is a {type(item).__name__}, not text: "
                                      + ("a name is one plain name" if key == "name" else "tags=[a,b] is two tags"))
                elif item is not None or key == "tags":
                    text = _typed(override, item)
                    example = f"name=\"'{text}'\"" if key == "name" else f"tags=\"['{text}']\""
                    raise ConfigError(f"{key}: {text} is read as a {_kind(item)}, not text: quote it to keep it as "
                                      f"typed, e.g. {example}")


def swept_keys(overrides: List[str]) -> Set[str]:
    """The keys (and groups) an override list sweeps over: lr=0.1,0.2, arch=mlp,cnn, range(...)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return {o.key_or_group for o in OverridesParser.create().parse_overrides(overrides) if o.is_sweep_override()}


def _kind(value: Any) -> str:
    return "boolean" if isinstance(value, bool) else "null" if value is None else "number" if isinstance(
        value, (int, float)) else type(value).__name__


def _typed(override: Any, value: Any) -> str:
    """The text the user typed for `value` in `override` (1e5, not 100000.0; True as typed)."""
    for word in re.split(r"[\[\],=\s]+", override.input_line or ""):
        if isinstance(value, bool) or value is None:
            if word.lower() == str(value).lower() or value is None and word.lower() == "null":
                return word
            continue
        try:
            if word and float(word) == value:
                return word
        except (TypeError, ValueError):
            continue
    return str(value)


def override_value(text: str) -> str:
    """Text (a path) as an override's value: as it is if plain, else quoted for Hydra's grammar,
    which reads a backslash as itself unless a quote follows it."""
    if re.fullmatch(r"[\w./-]+", text):
        return text
    return "'" + text.replace("'", "\\'") + "'"


def typed_keys(overrides: List[str]) -> Set[str]:
    """The keys (and config groups) an override list sets: `+key=`, `++key=` and `~key` too."""
    return {item.split("=", 1)[0].lstrip("+~") for item in overrides}


def unused_by(arch: str) -> Tuple[str, ...]:
    """The keys that shape the other networks, which `arch` does not read."""
    return tuple(k for network, keys in NETWORK_KEYS.items() if network != arch for k in keys)


def check_network_keys(arch: str, typed: Set[str]) -> None:
    """A key typed for another network than the chosen one would be shown in the run's settings
    and its record, and change nothing: refused."""
    for key in unused_by(arch):
        if key in typed:
            network = next(n for n, keys in NETWORK_KEYS.items() if key in keys)
            raise ConfigError(f"{key} is for arch={network}; arch={arch} does not use it: drop {key}, "
                              f"or add arch={network}")


def check_preset_arch(arch: str, choices: Mapping[str, Any], typed: Set[str]) -> None:
    """A preset sets its network (conf/experiment/*.yaml say arch:), and a preset's values come
    after the arch group's: arch= typed with a preset for the other network would be overruled."""
    preset, chosen = choices.get("experiment"), choices.get("arch")
    if "arch" in typed and preset and chosen != arch:
        raise ConfigError(f"experiment={preset} is a preset for arch={arch}, so it cannot run with arch={chosen}: "
                          "drop one of them")


def _validate_cnn(cfg: Config) -> None:
    """The convolutional network's keys, and the MLP-only options it does not take."""
    if not 1 <= len(cfg.channels) <= 4 or not all(isinstance(c, int) and 1 <= c <= 1024 for c in cfg.channels):
        raise ConfigError(f"channels={list(cfg.channels)} is out of range: channels must be a list of 1 to 4 "
                          "integers from 1 to 1024, e.g. channels=[16,32]")
    if 28 // cfg.pool ** len(cfg.channels) < 1:
        raise ConfigError(f"pool={cfg.pool} with {len(cfg.channels)} convolutions leaves no pixel of the 28x28 "
                          "image: use a smaller pool or fewer channels")
    for key, value in (("batch_norm", True), ("relu_derivative", "reference")):
        if getattr(cfg, key) == value:
            raise ConfigError(f"{key}={value} is for arch=mlp: the cnn takes "
                              f"{'batch_norm=false' if key == 'batch_norm' else 'relu_derivative=correct'}")


PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")  # a file or folder name, never a path


def _validate_data(data: DataConfig) -> None:
    """Names that become paths stay plain names inside their directory; mirrors are web URLs."""
    if not PLAIN_NAME.fullmatch(data.name):
        raise ConfigError(f"data.name={data.name[:60]!r} is not a plain name: it names the cache folder, so it "
                          "must be 1-100 letters, digits, '.', '_', '+' or '-', starting with a letter or digit")
    for role in ("train_images", "train_labels", "test_images", "test_labels"):
        spec: FileSpec = getattr(data, role)
        if not PLAIN_NAME.fullmatch(spec.name):
            raise ConfigError(f"data.{role}.name={spec.name[:60]!r} is not a plain file name (no '/', no '..', "
                              "1-100 letters, digits, '.', '_', '+' or '-')")
        if not re.fullmatch(r"[0-9a-f]{32}", spec.md5):
            raise ConfigError(f"data.{role}.md5={spec.md5[:60]!r} is not an MD5 (32 hexadecimal digits)")
    if not data.mirrors:
        raise ConfigError("data.mirrors is empty: give at least one mirror URL")
    for i, mirror in enumerate(data.mirrors):
        parts = urlsplit(str(mirror))
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"data.mirrors[{i}]={str(mirror)[:100]!r} is not an http:// or https:// URL")


def known_keys(schema: type, values: Any) -> Any:
    """`values` without the keys `schema` lacks (records of other versions), nested groups too."""
    if not isinstance(values, dict):
        return values  # the schema's merge refuses what is not a mapping
    kinds = {f.name: f.type for f in fields(schema)}
    return {k: known_keys(kinds[k], v) if is_dataclass(kinds[k]) else v for k, v in values.items() if k in kinds}


def register() -> None:
    ConfigStore.instance().store(name="config_schema", node=Config)
    from omegaconf import OmegaConf

    # hydra.run.dir ends in "_<name>" for a named run: ${mnist_exp.suffix:${name}}
    OmegaConf.register_new_resolver("mnist_exp.suffix", lambda name: f"_{name}" if name else "", replace=True)


def register_launchers() -> None:
    """hydra/launcher=joblib and =submitit_slurm run mnist_exp's subclasses of the plugins'
    launchers (mnist_exp/launchers/), with the plugins' keys and these defaults.

    Called after Hydra's plugin scan, which (re)loads each plugin's config module and stores
    its entries: ours replace them. Without the slurm extra there is nothing to replace.
    """
    from hydra.core.plugins import Plugins

    Plugins.instance()  # the scan, once per process (Hydra would run it next anyway)
    store = ConfigStore.instance()
    try:
        from hydra_plugins.hydra_joblib_launcher.config import JobLibLauncherConf

        store.store(group="hydra/launcher", name="joblib", provider="mnist_exp", node=JobLibLauncherConf(
            _target_="hydra_plugins.mnist_exp_launchers.joblib_launcher.JoblibLauncher"))
    except ImportError:
        pass
    try:
        from hydra_plugins.hydra_submitit_launcher.config import SlurmQueueConf
    except ImportError:
        return
    @dataclass
    class SlurmConf(SlurmQueueConf):
        wait: bool = True  # false: submit the array, print its ids and return (the jobs record themselves)

    store.store(group="hydra/launcher", name="submitit_slurm", provider="mnist_exp", node=SlurmConf(
        _target_="hydra_plugins.mnist_exp_launchers.submitit_launcher.SlurmLauncher",
        cpus_per_task=1,  # a job's BLAS threads follow it (SLURM_CPUS_PER_TASK)
        max_num_timeout=3,  # a job at its time limit is requeued (and resumes) up to 3 times
        # timeout_min stays 60: >= 50, submitit takes a USR2 for preemption (requeue), not a timeout;
        # mem_gb stays null: the launcher asks for what the largest job's config needs
    ))
