"""A model card for a finished run (Mitchell et al., 2019, "Model Cards for Model Reporting").

Written from the run's summary, so what it says is what the run measured.
"""

from typing import Any, Dict, Optional, Tuple

from mnist_exp.nn.losses import NAMES as LOSS_NAMES
from mnist_exp.runner.memory import TEST_IMAGES
from mnist_exp.runner.networks import network

TEMPLATE = """# Model card: {run_name}

## Model details
{details}
- Weights: {weights}; evaluate them again with `python -m mnist_exp.evaluate <this directory>`.

## Intended use
Learning and comparing training settings on a small classic benchmark. Not for any decision
about people, and not as {not_for} in production.

## Data
- Training: the first {train_samples} images of the {dataset} training set (60,000 in all).{validation}
- Evaluation: the first {test_samples} images of the {dataset} test set (10,000 in all).
- {dataset_note}; pixels scaled to [0, 1], no augmentation. Files checked by MD5:
{checksums}

## Metrics (status: {status})
| | loss per sample ({loss_name}) | accuracy |
|---|---|---|
| train (epoch {final_epoch}) | {final_train_loss} | {final_train_accuracy} |
| test (epoch {final_epoch}) | {final_test_loss} | {final_test_accuracy} |
| best test (epoch {best_epoch}) | {best_test_loss} | {best_test_accuracy} |

{kept_note} Train metrics are measured during
the epoch, with dropout; test metrics after it, without.
{per_class}
## Limitations
- {noise} Picking settings by test accuracy biases it upwards; {selection}.
- {structure}accuracy on {other_data} is unknown and likely lower.
- Results depend on the seed: compare settings over several seeds.

## Provenance
Run directory `{run_dir}`, wall time {wall_seconds:.1f} s, Python {python}, NumPy {numpy},
git commit {git_commit}.
"""


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4f}"


REFERENCE_DETAILS = """- A 784-{hidden}-10 multilayer perceptron: ReLU hidden layer, dropout 0.5 while training,
  no biases, linear outputs trained on squared error; plain NumPy (mnist_exp {version}).
- Trained by per-sample SGD, learning rate {lr}, for {epochs_run} of {epochs} epochs,
  seed {seed}. It follows the classic NumPy MNIST walkthrough exactly, including its
  ReLU-derivative quirk (the derivative is taken as always 1)."""

OPTIONS_DETAILS = """- A {architecture}; plain NumPy (mnist_exp {version}).
- Trained for {epochs_run} of {epochs} epochs, learning rate {lr}, seed {seed}, with these
  settings beyond the walkthrough's: {options}."""

# Per data set: what the model must not be used as, and the data its accuracy says nothing about.
DATASET_LIMITS = {
    "mnist": ("a handwriting reader", "other handwriting, scans or styles than MNIST's"),
    "fashion_mnist": ("a clothing classifier", "photographs or product images other than Fashion-MNIST's"),
}

DATASET_NOTES = {
    "mnist": "MNIST: 28x28 greyscale digits written by US Census Bureau employees and high-school students",
    "fashion_mnist": "Fashion-MNIST (Zalando): 28x28 greyscale images of 10 kinds of clothing and shoes",
}


def _details(cfg: Dict[str, Any], summary: Dict[str, Any]) -> str:
    from mnist_exp.config import OPTION_KEYS, Config

    defaults = Config()
    options = [f"{k}={cfg[k]}" for k in OPTION_KEYS if k in cfg and cfg[k] != getattr(defaults, k)]
    values = dict(hidden=cfg["hidden_size"], version=summary["versions"]["mnist_exp"], lr=cfg["lr"],
                  epochs_run=summary["epochs_run"], epochs=cfg["epochs"], seed=cfg["seed"],
                  architecture=network(cfg).words(), options=", ".join(options))
    return (OPTIONS_DETAILS if options else REFERENCE_DETAILS).format(**values)




def _per_class(summary: Dict[str, Any]) -> str:
    accuracy = (summary.get("per_class") or {}).get("accuracy")
    if not accuracy:
        return ""
    cells = " | ".join(f"{name}: {_fmt(value)}" for name, value in accuracy.items())
    return f"\nTest accuracy per class (`confusion.csv` has the counts): {cells}\n"


def _kept_note(status: str, final: Dict[str, Any], last: Dict[str, Any]) -> str:
    """Which epoch's weights weights.npz holds, and why that one."""
    if not final:
        return ("The run diverged in its first epoch: no finite weights to keep, so no `weights.npz`."
                if status == "diverged" else "No epoch finished, so no weights were saved.")
    if last.get("epoch") == final.get("epoch"):
        return f"The weights saved are those of epoch {final['epoch']}."
    if status == "diverged":
        return (f"The weights saved are those of epoch {final['epoch']}, the last finite one "
                f"(epoch {last.get('epoch')} diverged).")
    return (f"The weights saved are those of epoch {final['epoch']}, restored by early stopping (the last "
            f"epoch, {last.get('epoch')}, had test accuracy {_fmt(last.get('test_accuracy'))}).")


def _weights(arrays: Optional[Dict[str, Tuple[int, ...]]]) -> str:
    """The arrays weights.npz holds, by name and shape: those of this network, not a template's."""
    if not arrays:
        return "none kept (no `weights.npz`)"
    listed = ", ".join(f"`{name}` {'x'.join(map(str, shape)) or 'scalar'}" for name, shape in arrays.items())
    return f"`weights.npz`, arrays named by layer: {listed}"


def _limits(cfg: Dict[str, Any]) -> Dict[str, str]:
    """The Limitations lines that depend on the network, the data set and the test set's size."""
    name, n = cfg["data"]["name"], cfg["test_samples"]
    not_for, other_data = DATASET_LIMITS.get(name, ("a classifier of other images", "other images"))
    noise = (f"Small subsets give noisy estimates: with {n} test images one image is {1 / n:.2%} of accuracy."
             if n < TEST_IMAGES else f"All {n:,} test images were used; one image is {1 / n:.2%} of accuracy.")
    cnn = cfg.get("arch", "mlp") == "cnn"
    return dict(
        not_for=not_for, noise=noise, other_data=other_data,
        selection=("the validation split is there to choose by instead" if cfg.get("val_samples")
                   else "a separate validation split would be needed for unbiased model selection"),
        structure=("A small convolutional network trained without augmentation; " if cnn else
                   "A fully connected network ignores the 2-D structure of images; "))


def render(summary: Dict[str, Any], arrays: Optional[Dict[str, Tuple[int, ...]]] = None) -> str:
    """The card of a run; `arrays` are the names and shapes of the weights it keeps."""
    cfg, final, best = summary["config"], summary["final"] or {}, summary["best"] or {}
    last = summary.get("last") or final
    name = cfg["data"]["name"]
    val = cfg.get("val_samples", 0)
    checksums = "\n".join(f"  - `{name}`: `{md5}`" for name, md5 in summary["data"]["checksums"].items())
    return TEMPLATE.format(
        run_name=summary["run_name"], details=_details(cfg, summary),
        dataset=name.replace("_", "-").replace("mnist", "MNIST").replace("fashion", "Fashion"),
        dataset_note=DATASET_NOTES.get(name, name),
        validation=(f"\n- Validation: the {val} training images after those (for model selection)." if val else ""),
        train_samples=cfg["train_samples"], test_samples=cfg["test_samples"], checksums=checksums,
        status=summary["status"], final_epoch=final.get("epoch", "n/a"), best_epoch=best.get("epoch", "n/a"),
        loss_name=LOSS_NAMES.get(cfg.get("loss", "sse"), cfg.get("loss")), per_class=_per_class(summary),
        kept_note=_kept_note(summary["status"], final, last),
        **{f"final_{k}": _fmt(final.get(k)) for k in ("train_loss", "train_accuracy", "test_loss", "test_accuracy")},
        best_test_loss=_fmt(best.get("test_loss")), best_test_accuracy=_fmt(best.get("test_accuracy")),
        weights=_weights(arrays), **_limits(cfg), run_dir=summary["run_dir"], wall_seconds=summary["wall_seconds"],
        python=summary["versions"]["python"], numpy=summary["versions"]["numpy"],
        git_commit=summary["git_commit"] or "unknown",
    )
