"""The report's data: every run under the paths, as plain JSON-ready values.

Read through results.load_runs/load_history only; the run's own figures and model card are
files beside it, inlined while they fit the image budget (see IMAGE_BUDGET) and linked after.
"""

import base64
import os
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import pandas as pd

from mnist_exp.analysis import results, varying
from mnist_exp.record import CONFUSION_PNG, CURVES, MISTAKES_PNG, MODEL_CARD

# Past this many bytes of run figures in all, every run's figures are linked (relative to the
# report) rather than inlined: ~20 runs of three PNGs of ~55 KB each.
IMAGE_BUDGET = 3_000_000
IMAGES = {"confusion": CONFUSION_PNG, "misclassified": MISTAKES_PNG, "curves": CURVES}
METRICS = ["final_val_accuracy", "final_test_accuracy", "best_test_accuracy", "final_test_loss", "final_train_accuracy",
           "final_train_loss", "epochs_run", "wall_seconds"]
CURVE_METRICS = results.METRIC_NAMES


def collect(runs: pd.DataFrame, history: pd.DataFrame, out_dir: Path) -> Dict[str, Any]:
    """{"keys", "common", "runs", "history", "inline"} from results.load_runs(per_class=True) and
    load_history: the runs in their order, the config keys that vary across them and the
    values all of them share."""
    keys = varying.varying_keys(runs)
    inline = _image_bytes(runs) <= IMAGE_BUDGET
    shown = runs.assign(**{k: varying.values(runs, k) for k in keys})  # blank where a key does not apply
    return {"keys": keys, "common": _common(runs, keys),
            "runs": [_run(i, pd.Series(run), keys, out_dir, inline) for i, run in enumerate(shown.to_dict("records"))],
            "history": _history(history, runs), "inline": inline}


def _plain(item: Any) -> Any:
    """A cell as JSON: NaN and NA as null, numpy scalars as Python numbers."""
    if item is None or (not isinstance(item, (str, list, dict)) and pd.isna(item)):
        return None
    return item.item() if hasattr(item, "item") else item


def _common(runs: pd.DataFrame, keys: List[str]) -> Dict[str, str]:
    """The compared keys every run shares, as text (empty for none)."""
    if runs.empty:
        return {}
    first = runs.iloc[0]
    return {k: varying.short(varying.value(first, k)) for k in varying.COMPARED_KEYS
            if k not in keys and varying.value(first, k) is not None}


def _run(index: int, run: pd.Series, keys: List[str], out_dir: Path, inline: bool) -> Dict[str, Any]:
    run_dir = Path(run["run_dir"])
    return {"id": index, "dir": str(run_dir), "link": _link(run_dir, out_dir), "job": _plain(run["job"]),
            "name": _plain(run["name"]) or _unnamed(run, run_dir), "tags": _plain(run["tags"]) or "",
            "status": run["status"], "reason": _plain(run["reason"]) or "",
            "data": _plain(run["data.name"]), "arch": _plain(run["arch"]), "started": _plain(run["started_at"]),
            "values": {k: _plain(run[k]) for k in keys},
            "text": {k: varying.short(run[k]) for k in keys},
            "metrics": {m: _plain(run[m]) for m in METRICS},
            "per_class": {c[len("test_accuracy_"):]: _plain(run[c]) for c in run.index
                          if c.startswith("test_accuracy_") and pd.notna(run[c])},
            "files": sorted(p.name for p in _listing(run_dir)),
            "images": {k: _image(run_dir / name, out_dir, inline) for k, name in IMAGES.items()},
            "model_card": _model_card(run_dir / MODEL_CARD, inline)}


def _unnamed(run: pd.Series, run_dir: Path) -> str:
    """A sweep job without a name as 'job N', another run by its directory's name."""
    return f"job {run['job']}" if pd.notna(run["job"]) else run_dir.name


def _link(path: Path, out_dir: Path) -> str:
    """The path as a link from the report's folder (relative, so the tree can move as a whole)."""
    try:
        return Path(os.path.relpath(path, out_dir)).as_posix()
    except ValueError:  # another drive
        return path.as_uri()


def _listing(run_dir: Path) -> List[Path]:
    try:
        return [p for p in run_dir.iterdir() if not p.name.startswith(".") or p.name == ".hydra"]
    except OSError:
        return []


def _image_bytes(runs: pd.DataFrame) -> int:
    total = 0
    for run_dir in runs["run_dir"]:
        for name in IMAGES.values():
            try:
                total += os.stat(Path(run_dir) / name).st_size
            except OSError:
                pass
    return total


def _image(path: Path, out_dir: Path, inline: bool) -> Optional[str]:
    """A PNG as a data: URI (inline) or a relative link; None when the run has none."""
    if not path.is_file():
        return None
    if not inline:
        return _link(path, out_dir)
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if head != b"\x89PNG\r\n\x1a\n":
                return None  # not a picture: a damaged file must not become a broken page
            return "data:image/png;base64," + base64.b64encode(head + f.read()).decode("ascii")
    except OSError:
        return None


def _model_card(path: Path, inline: bool) -> Optional[str]:
    if not inline or not path.is_file():
        return None
    try:
        return path.read_text(encoding="utf-8", errors="replace")[:20_000]
    except OSError:
        return None


def _history(history: pd.DataFrame, runs: pd.DataFrame) -> Dict[str, Dict[str, list]]:
    """Run id -> {"epoch": [...], metric: [...]}, metrics to 6 decimals (accuracies of 10,000
    images have 4), gaps as null. One sort and split, not a group per run: 1,000 runs stay fast."""
    ids = {d: i for i, d in enumerate(runs["run_dir"])}
    rows = history[history["run_dir"].isin(ids)].sort_values(["run_dir", "epoch"], kind="stable")
    if rows.empty:
        return {}
    dirs = rows["run_dir"].to_numpy()
    starts = [0, *(np.flatnonzero(dirs[1:] != dirs[:-1]) + 1), len(rows)]
    columns = {"epoch": rows["epoch"].astype(int).to_numpy()}
    columns.update({m: rows[m].astype(float).round(6).to_numpy() if m in rows else np.full(len(rows), np.nan)
                    for m in CURVE_METRICS})  # val_* only where some run has a validation split
    curves = {}
    for start, end in zip(starts, starts[1:]):
        curves[str(ids[dirs[start]])] = {name: [None if v != v else v for v in values[start:end].tolist()]
                                         for name, values in columns.items()}
    return curves
