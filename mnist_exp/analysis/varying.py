"""Which config keys tell a set of runs apart: what the run list, the report and diff show.

Keys that say where a run ran (data.dir, resume, ...) never count; the data set is one key,
`data.name` (its files' names and MD5s stand behind it); a network key of the other
architecture (an MLP run's `channels`) is not a setting of that run.
"""

from typing import Any, List, Optional

import pandas as pd

from mnist_exp.analysis import results
from mnist_exp.config import NETWORK_KEYS

DATA_FILE_KEYS = tuple(k for k in results.CONFIG_TYPES if k.startswith("data.") and k.endswith((".name", ".md5"))
                       and k != "data.name")
COMPARED_KEYS = [k for k in results.CONFIG_TYPES if k not in results.LOCATION_KEYS and k not in DATA_FILE_KEYS]


def applies(key: str, arch: Any) -> bool:
    """Whether `key` is a setting of a run of architecture `arch` (unknown: every key is)."""
    owners = [name for name, keys in NETWORK_KEYS.items() if key in keys]
    return not owners or not isinstance(arch, str) or arch in owners


def value(run: pd.Series, key: str) -> Optional[Any]:
    """A run's value of `key`, or None where it is missing or not a setting of its architecture."""
    item = run.get(key)
    return None if item is None or pd.isna(item) or not applies(key, run.get("arch")) else item


def values(runs: pd.DataFrame, key: str) -> pd.Series:
    """`value` of every run at once (object dtype, None where missing or not applying)."""
    column = runs[key].astype(object).where(runs[key].notna(), None)
    owners = [name for name, keys in NETWORK_KEYS.items() if key in keys]
    if owners and "arch" in runs:
        arch = runs["arch"].astype(object)
        column = column.where(arch.isin(owners) | ~arch.map(lambda a: isinstance(a, str)), None)
    return column


def varying_keys(runs: pd.DataFrame) -> List[str]:
    """Compared keys whose values differ between the runs; 'not a setting of this run' counts
    as a value, so a mix of MLPs and CNNs shows both networks' keys, MLPs alone no `channels`.
    Runs whose config could not be read (status unreadable) have no say."""
    readable = runs[runs["status"] != "unreadable"] if "status" in runs else runs
    return [key for key in COMPARED_KEYS if values(readable, key).map(repr).nunique() > 1]


def data_files_differ(a: pd.Series, b: pd.Series) -> bool:
    """Whether two runs read different files (by MD5) under the same data set name."""
    return any(str(a.get(k)) != str(b.get(k)) for k in DATA_FILE_KEYS if k.endswith(".md5"))


def short(item: Any) -> str:
    """A value as a person reads it: 1e-05 and 0.005 as written, whole numbers without '.0'."""
    if item is None or (not isinstance(item, str) and pd.isna(item)):
        return ""
    if isinstance(item, float):
        return f"{item:.4g}" if 1e-3 <= abs(item) < 1e4 or item == 0 else f"{item:.3g}"
    return str(item)
