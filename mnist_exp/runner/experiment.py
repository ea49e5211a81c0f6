"""One experiment from a typed config: data, network, training and the full run record.

Callable without Hydra: `run_experiment(Config(lr=0.01), Path("some/dir"))`.
"""

import logging
import sys
from contextlib import closing
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional

import numpy as np

from mnist_exp import record
from mnist_exp.record import summary
from mnist_exp.runner import memory, model_card, per_class
from mnist_exp.files.atomic import write_atomic
from mnist_exp.config import OPTION_KEYS, Config, validate
from mnist_exp.data.datasets import load_dataset, split
from mnist_exp.errors import UserError, record_error
from mnist_exp.runner.figure_process import FigureHelper
from mnist_exp.runner.interrupts import Interrupted, RunStopped, critical, graceful_interrupts
from mnist_exp.nn.models import check_checkpoint
from mnist_exp.runner.networks import build, network, restore
from mnist_exp.nn.optim import lr_at
from mnist_exp.record.metrics import EpochMetrics
from mnist_exp.runner.train import EarlyStopping, train

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """How a run that ran to its end ended, as its summary.json records it. A run stopped by a
    signal raises RunStopped instead, and one that failed raises its error, once recorded."""
    status: str  # completed, pruned or diverged
    reason: Optional[str]
    final: Optional[Dict[str, Any]]  # the metrics of the epoch whose weights the run keeps (None: no weights)
    best: Optional[Dict[str, Any]]  # the epoch of highest test accuracy
    epochs_run: int
    run_dir: Path
    resumable: bool  # a checkpoint to extend it from (resume=RUN epochs=N)

    @classmethod
    def of(cls, summary: Dict[str, Any], run_dir: Path) -> "Outcome":
        return cls(summary["status"], summary["reason"], summary["final"], summary["best"], summary["epochs_run"],
                   run_dir, (run_dir / record.CHECKPOINT).is_file())
FIGURE_POINTS = 2000  # curves.png plots at most about this many epochs of a long run


def describe(cfg: Config) -> str:
    """The reference keys, then every option that differs from its default."""
    network = (f"arch=cnn channels={list(cfg.channels)} kernel_size={cfg.kernel_size} pool={cfg.pool} "
               f"dense_width={cfg.dense_width}" if cfg.arch == "cnn" else f"hidden_size={cfg.hidden_size}")
    text = (f"lr={cfg.lr:g} {network} epochs={cfg.epochs} "
            f"train_samples={cfg.train_samples} test_samples={cfg.test_samples} seed={cfg.seed}")
    defaults, shown = Config(), ("arch", "channels", "kernel_size", "pool", "dense_width")
    changed = [f"{k}={as_typed(getattr(cfg, k))}" for k in OPTION_KEYS
               if getattr(cfg, k) != getattr(defaults, k) and k not in shown]
    return " ".join([text, *changed])


def as_typed(value: Any) -> str:
    """A value as the command line and the YAML configs spell it: true/false/null, not True/None."""
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    return str(value)


def digits(images: int) -> int:
    """Decimals that show one image's worth of accuracy: 3 up to 1,000 images, 4 on 10,000."""
    return max(3, len(str(max(images, 1) - 1)))


def progress_line(m: EpochMetrics, epochs: int, cfg: Optional[Config] = None) -> str:
    width = len(str(epochs - 1))
    d_train, d_val, d_test = (digits(n) for n in (cfg.train_samples, cfg.val_samples, cfg.test_samples)) \
        if cfg else (3, 3, 3)
    val = f"  val loss {m.val_loss:.4f} acc {m.val_accuracy:.{d_val}f}" if m.val_loss is not None else ""
    return (f"epoch {m.epoch:>{width}}/{epochs - 1}  train loss {m.train_loss:.4f} acc {m.train_accuracy:.{d_train}f}"
            f"{val}  test loss {m.test_loss:.4f} acc {m.test_accuracy:.{d_test}f}  {m.seconds:.2f}s")


def run_experiment(cfg: Config, run_dir: Path, extra: Optional[Dict[str, Any]] = None,
                   resume: bool = False, extends: Optional[Path] = None,
                   on_epoch: Optional[Callable[[EpochMetrics], bool]] = None) -> Outcome:
    """Train as `cfg` says and record everything in `run_dir`; returns how it ended (Outcome).

    With `resume`, `run_dir` is a run stopped (or finished) earlier: it continues from its
    last checkpoint up to `cfg.epochs`, giving exactly the metrics of an uninterrupted run,
    and its record changes only when an epoch finishes: a resume that fails or is stopped
    before that leaves every file as it was. Whatever else stops a run, summary.json says so
    (status failed or interrupted, with the reason) before the exception goes on, unless the
    run had already recorded how it ended. `extra` is stored in it as given (e.g. job info).
    With `extends` (a completed run, and `resume`), the run continues that one's training in
    the new `run_dir`: the completed run's record stays byte-identical.
    `on_epoch` sees each finished epoch once it is recorded; True stops the run with status
    pruned (a search's pruner), keeping the record of the epochs it ran.
    """
    validate(cfg)  # a config refused here leaves nothing behind: nothing was written yet
    memory.check(cfg)  # before any data is read
    run_dir.mkdir(parents=True, exist_ok=True)
    status = summary.SummaryWriter(cfg, run_dir, extra)
    if resume:
        status.resume_from(summary.load(extends or run_dir))
    if extends:
        status.extra["extends"] = str(extends)
    with graceful_interrupts():  # also over the handlers below: a second Ctrl-C waits for them
        try:
            return _guarded(cfg, run_dir, status, resume, extends, on_epoch)
        finally:
            if extends and not status.may_write:  # stopped before its first epoch: the copies go
                record.discard_extension(run_dir)


def _guarded(cfg: Config, run_dir: Path, status: summary.SummaryWriter, resume: bool,
             extends: Optional[Path], on_epoch=None) -> Outcome:
    """Run, and record how the run ended whatever stops it."""
    try:
        with FigureHelper() as figure:
            try:
                return _run(cfg, run_dir, status, resume, figure, extends, on_epoch)
            except KeyboardInterrupt:
                if status.may_write and not status.ended:  # a further signal is noted, not raised
                    _curves_so_far(cfg, run_dir, figure, status.tally.count)
                raise
    except KeyboardInterrupt as e:
        if status.may_write and not status.ended:
            status.save("interrupted", f"interrupted by {e}" if isinstance(e, Interrupted) else "interrupted")
        resumable = run_dir if (run_dir / record.CHECKPOINT).is_file() else None  # the CLI says what to resume
        raise RunStopped(e, resumable, status.ended) from e
    except SystemExit:  # submitit's answer to SIGUSR2 (preemption, time limit): requeued, then resumed
        if status.may_write and not status.ended:
            status.save("interrupted", "stopped by the scheduler (preempted or at its time limit); "
                                       "SLURM requeues the job, which resumes from its last finished epoch")
        raise
    except OSError as e:  # the record could not be written: disk full, read-only, removed
        failure = record_error(e, run_dir)
        if status.may_write and not status.ended:
            try:
                status.save("failed", str(failure))
            except OSError:
                pass  # the disk is still full: summary.json stays as its last complete write
        raise failure from None
    except Exception as e:
        if status.may_write and not status.ended:
            status.save("failed", str(e) if isinstance(e, UserError) else f"{e.__class__.__name__}: {e}")
        raise


def _run(cfg: Config, run_dir: Path, status: summary.SummaryWriter, resume: bool,
         figure: FigureHelper, extends: Optional[Path] = None, on_epoch=None) -> Outcome:
    verb = f"extend {extends} into" if extends else "resume" if resume else "run"
    log.info("%s %s: %s", verb, run_dir, describe(cfg))
    stopper = EarlyStopping(cfg.early_stopping) if cfg.early_stopping else None
    if resume:  # everything checked before any data is read; nothing written until an epoch ends
        source = extends or run_dir  # an extension reads the completed run's record, writes its own
        path = source / record.CHECKPOINT
        model = build(cfg, np.random.default_rng(0))  # its arrays are replaced by the checkpoint's
        saved = record.load_checkpoint(path, lambda specs, names: check_checkpoint(
            model, bool(stopper), specs, path, names))  # every array, optimiser's and early stopping's too
        model = restore(cfg, saved.model, path, model, saved.optimizer)
        rng, start = saved.rng, saved.epochs_done
        if stopper:
            stopper.load_state(saved.early_stopping)
        _check_resumable(source, status.previous_status, start, cfg.epochs, bool(stopper and stopper.stop))
        if extends:
            record.copy_for_extension(extends, run_dir)
        metrics = record.MetricsWriter(run_dir, bool(cfg.val_samples), resume_rows=start)  # checks the rows
    dataset = load_dataset(cfg.data)
    status.data = {"dir": dataset.dir, "files": dataset.paths, "checksums": dataset.checksums}
    dtype = np.dtype(cfg.dtype)
    train_set = split(dataset.train_images, dataset.train_labels, cfg.train_samples, dtype=dtype)
    test_set = split(dataset.test_images, dataset.test_labels, cfg.test_samples, dtype=dtype)
    val_set = split(dataset.train_images, dataset.train_labels, cfg.val_samples, cfg.train_samples,
                    dtype) if cfg.val_samples else None
    if resume:
        log.info("continuing after epoch %d, up to epoch %d", start - 1, cfg.epochs - 1)
    else:
        rng = np.random.default_rng(cfg.seed)
        model, start = build(cfg, rng), 0
        metrics = record.MetricsWriter(run_dir, bool(val_set))
        status.save("running")
    if sys.stderr.isatty() and not status.extra.get("job") and hasattr(model, "progress"):
        model.progress = sys.stderr  # a bar within long epochs, for a person at a terminal (not a sweep's jobs)
    status.tally = metrics.tally

    def lr_of_epoch(epoch: int) -> float:
        return lr_at(epoch, cfg.lr, cfg.lr_schedule, cfg.epochs, cfg.lr_step, cfg.lr_decay)

    state, reason = "completed", None
    with closing(metrics):
        for m in train(model, train_set, test_set, lr_of_epoch, cfg.epochs, rng, start, val_set, stopper):
            with critical():  # a signal waits until the row and its checkpoint are both written
                if not status.may_write:  # a resume's first write: temp files of a killed writer go first
                    for stale in run_dir.glob(".*.part"):
                        stale.unlink(missing_ok=True)
                metrics.append(m)
                if m.finite:  # a diverged epoch leaves the last finite checkpoint in place
                    record.save_checkpoint(run_dir / record.CHECKPOINT, record.Checkpoint(
                        model.arrays(), model.optimizer_state(), stopper.state() if stopper else {}, rng, m.epoch + 1))
                status.may_write = True
                status.save("running")
            log.info(progress_line(m, cfg.epochs, cfg))
            if not m.finite:
                state, reason = "diverged", f"loss is not finite at epoch {m.epoch} (lr={cfg.lr:g} too high?)"
                log.error("diverged: %s", reason)
                break
            with critical():  # the trial's report to its study (a database write) is never cut short
                pruned = on_epoch is not None and on_epoch(m)
            if pruned:
                state, reason = "pruned", f"pruned after epoch {m.epoch}: its validation accuracy lagged the search's"
                log.info("%s", reason)
                break
    kept = metrics.tally.last  # the epoch whose weights the run keeps
    if state == "diverged" and not (stopper and stopper.best):
        kept = _last_finite(cfg, run_dir, model, metrics.path)
        status.weights_kept = kept is not None
    if stopper:
        stopper.restore_best(model)
        kept = record.find_row(metrics.path, stopper.best_epoch) or kept
        status.extra["early_stopping"] = {"best_epoch": stopper.best_epoch, "best_val_loss": stopper.best_loss,
                                          "stopped_early": stopper.stop, "restored_best_weights": True,
                                          "restored_metrics": kept and asdict(kept)}  # what weights.npz scores
        log.info("early stopping: best validation loss %.4f at epoch %d%s; its weights restored", stopper.best_loss,
                 stopper.best_epoch, f", stopped after epoch {metrics.tally.last.epoch}" if stopper.stop else "")
    status.kept = kept
    with critical():  # the record is complete when this block ends, whatever signal arrives meanwhile
        status.may_write = True  # (a resume killed after its last epoch, before this block, comes here at once)
        figures = _final_figures(cfg, run_dir, metrics, kept, stopper)
        if status.weights_kept:  # NaN weights are never kept, scored or described
            record.save_weights(run_dir / record.WEIGHTS, model.arrays())
            figures += _per_class(cfg, run_dir, model, test_set, status)
        figure.draw(figures)
        result = status.build(state, reason)
        kept_arrays = {k: v.shape for k, v in model.arrays().items()} if status.weights_kept else None
        write_atomic(run_dir / record.MODEL_CARD, lambda tmp: tmp.write_text(model_card.render(result, kept_arrays)))
        status.save(state, reason)  # last: summary.json is the record's word on how the run ended
        status.ended = True
    if result["final"] and result["best"]:
        final, last = result["final"], result["last"]
        d = digits(cfg.test_samples)
        restored = "" if final["epoch"] == last["epoch"] else ", the last finite one" if state == "diverged" \
            else f", restored by early stopping; last epoch {last['epoch']}: {last['test_accuracy']:.{d}f}"
        log.info("%s: test accuracy %.*f (the weights of epoch %d%s), best %.*f at epoch %d; record in %s", state,
                 d, final["test_accuracy"], final["epoch"], restored, d, result["best"]["test_accuracy"],
                 result["best"]["epoch"], run_dir)
    return Outcome.of(result, run_dir)


def _last_finite(cfg: Config, run_dir: Path, model, metrics_path: Path) -> Optional[EpochMetrics]:
    """Put the last finite epoch's weights (its checkpoint's) back into `model`; that epoch's
    row, or None when no epoch ended finite (then the run keeps no weights)."""
    path = run_dir / record.CHECKPOINT
    if not path.is_file():
        return None
    saved = record.load_checkpoint(path)
    restore(cfg, saved.model, path, model, saved.optimizer)
    return record.find_row(metrics_path, saved.epochs_done - 1)


def title(cfg: Config) -> str:
    """What a figure shows: the run's name, data set, architecture and settings."""
    named = f"{cfg.name}: " if cfg.name else ""
    return f"{named}{DATA_TITLES.get(cfg.data.name, cfg.data.name)} {network(cfg).short()}, {describe(cfg)}"


DATA_TITLES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}


def _curves_so_far(cfg: Config, run_dir: Path, figure: FigureHelper, count: int) -> None:
    """curves.png of an interrupted run, from the epochs it finished (the helper has matplotlib
    warm); a figure that cannot be drawn does not hide the interruption."""
    try:
        rows = record.read_metrics(run_dir / record.METRICS, step=max(1, count // FIGURE_POINTS))
        if rows:
            figure.draw([("plot_curves", {"rows": rows, "title": f"{title(cfg)} (interrupted)",
                                          "path": run_dir / record.CURVES, "loss": cfg.loss, "restored_epoch": None})])
    except Exception as e:  # noqa: BLE001 - the record is what matters here
        log.warning("curves.png of the interrupted run not drawn: %s", e)


def _final_figures(cfg: Config, run_dir: Path, metrics: record.MetricsWriter, kept, stopper) -> list:
    rows = record.read_metrics(metrics.path, step=max(1, metrics.tally.count // FIGURE_POINTS))
    restored = kept.epoch if stopper and kept is not None and kept is not metrics.tally.last else None
    return [("plot_curves", {"rows": rows, "title": title(cfg), "path": run_dir / record.CURVES, "loss": cfg.loss,
                             "restored_epoch": restored})]


def _per_class(cfg: Config, run_dir: Path, model, test_set, status: summary.SummaryWriter) -> list:
    """confusion.csv and the per-class summary of the kept weights; their figures to draw."""
    names = per_class.class_names(cfg.data.name)
    truth, predicted = test_set.y.argmax(axis=1), model.outputs(test_set.x).argmax(axis=1)
    matrix = per_class.confusion(truth, predicted, len(names))
    write_atomic(run_dir / record.CONFUSION, lambda tmp: per_class.write_csv(tmp, matrix, names))
    status.extra["per_class"] = per_class.summary(matrix, names)
    images, true_labels, predicted_labels = per_class.mistakes(test_set.pixels, truth, predicted)
    return [("plot_confusion", {"matrix": matrix, "classes": names, "path": run_dir / record.CONFUSION_PNG,
                                "title": f"test confusion matrix ({len(truth)} images): {title(cfg)}"}),
            ("plot_misclassified", {"images": images, "truth": true_labels, "predicted": predicted_labels,
                                    "classes": names, "path": run_dir / record.MISTAKES_PNG,
                                    "title": f"misclassified test images, true → predicted: {title(cfg)}"})]


def _check_resumable(run_dir: Path, status: Optional[str], done: int, epochs: int, stopped_early: bool) -> None:
    """Refuse a resume that has nothing to do. A run whose epochs all finished but whose final
    writes did not (killed in between) is resumable: the resume completes its record."""
    if status == "diverged":
        raise UserError(f"resume={run_dir}: the run diverged; continuing it would repeat that: "
                        "start a new run (e.g. with a lower lr)")
    if done > epochs:
        raise UserError(f"resume={run_dir}: the run has finished {done} epochs, more than epochs={epochs}: "
                        f"give epochs=N with N > {done} to train it further")
    if status == "completed" and (done == epochs or stopped_early):
        why = "it stopped early (early_stopping)" if stopped_early else f"it has finished its {done} epochs"
        raise UserError(f"resume={run_dir}: nothing to do, {why}"
                        + ("" if stopped_early else f"; give epochs=N with N > {done} to train it further"))
