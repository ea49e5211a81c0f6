"""The self-contained HTML report: `python -m mnist_exp.report PATH... [--out FILE]`.

    from mnist_exp.report import build_report
    build_report(["outputs/multirun/2026-11-23/10-00-00.000000"], "report.html")

collect gathers the runs (through mnist_exp.results), sweeps draws the sweep views with
plotly, page writes the one HTML file. Needs the 'report' extra (plotly).
"""

from pathlib import Path
from typing import Iterable, Union

REPORT_HTML = "report.html"
EXTRA = ("this needs the 'report' extra, which is not installed: pip install -e '.[report]' in a checkout, "
         "or pip install 'mnist_exp[report]'")


class MissingExtra(ImportError):
    """plotly is not installed."""


def build_report(paths: Union[str, Path, Iterable[Union[str, Path]]], out: Union[str, Path]) -> int:
    """Write the report of every run under `paths` to `out` (atomically); the number of runs."""
    try:
        import plotly  # noqa: F401
    except ImportError as e:
        raise MissingExtra(EXTRA) from e
    from mnist_exp.analysis import results
    from mnist_exp.files.atomic import write_atomic
    from mnist_exp.report import collect, page, sweeps

    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    out = Path(out).absolute()
    runs = results.load_runs(paths, per_class=True)
    data = collect.collect(runs, results.load_history(paths), out.parent)
    title = "mnist_exp report: " + ", ".join(map(str, paths))
    text = page.render(data, sweeps.sweep_views(runs), title)
    write_atomic(out, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return len(runs)
