"""Sweep views, as plotly figures: the objective against each swept key, a heatmap for a
two-key grid, parallel coordinates of the swept keys and the objective; for an Optuna search
the optimisation history and how strongly each parameter goes with the objective."""

from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pandas as pd

from mnist_exp.analysis import selection, summarize


def sweep_views(runs: pd.DataFrame) -> List[Dict[str, Any]]:
    """One {"dir", "keys", "search", "figures": [plotly JSON text]} per sweep among the runs."""
    views = []
    parents = runs["run_dir"].map(lambda d: str(Path(d).parent))
    for sweep_dir in dict.fromkeys(parents):
        if not (Path(sweep_dir) / "multirun.yaml").is_file():
            continue
        jobs = runs[parents == sweep_dir].sort_values("job", kind="stable")
        searched = summarize.searched_params(Path(sweep_dir))
        keys = searched or summarize.swept_keys(Path(sweep_dir), jobs)
        metric = selection.objective_metric(jobs, search=summarize.is_search(Path(sweep_dir)))
        views.append({"dir": sweep_dir, "keys": keys, "search": bool(searched), "objective": metric,
                      "figures": [f.to_json() for f in _figures(jobs, keys, bool(searched), metric)]})
    return views


def _figures(jobs: pd.DataFrame, keys: List[str], search: bool, metric: str) -> list:
    objective = selection.objective(jobs, metric).rename(selection.AXIS[metric])
    figures = [_history(jobs, keys, objective), _importance(jobs, keys, objective)] if search else []
    if keys:
        figures.append(_against(jobs, keys, objective))
    if not search and len(keys) == 2 and jobs[keys].drop_duplicates().shape[0] > 1 and objective.notna().any():
        figures.append(_heatmap(jobs, keys, objective))
    if keys and len(jobs) > 1:
        figures.append(_parallel(jobs, keys, objective))
    return figures


def _layout(fig, title: str, height: int = 380, top: int = 50):
    fig.update_layout(title=title, height=height, margin=dict(l=60, r=30, t=top, b=50), template="plotly_white")
    return fig


def _hover(jobs: pd.DataFrame, keys: List[str]) -> List[str]:
    return [f"job {job}<br>" + "<br>".join(f"{k}={_text(v)}" for k, v in zip(keys, values))
            for job, values in zip(jobs["job"], jobs[keys].itertuples(index=False))]


def _text(value) -> str:
    return f"{value:g}" if isinstance(value, (float, np.floating)) else str(value)


def _against(jobs, keys, objective):
    """The objective against each key: numbers on a (log, for a wide positive range) axis."""
    from plotly.subplots import make_subplots
    import plotly.graph_objects as go

    fig = make_subplots(rows=1, cols=len(keys), shared_yaxes=True, subplot_titles=keys)
    for col, key in enumerate(keys, start=1):
        values = jobs[key]
        x = values.astype(float) if _numeric(values) else values.astype(str)
        fig.add_trace(go.Scatter(x=x, y=objective, mode="markers", name=key, showlegend=False,
                                 text=_hover(jobs, keys), hovertemplate="%{text}<br>objective %{y:.4f}<extra></extra>"),
                      row=1, col=col)
        if _numeric(values) and _wide(values, key):
            fig.update_xaxes(type="log", row=1, col=col)
    fig.update_yaxes(title_text=objective.name, row=1, col=1)
    return _layout(fig, "objective against each swept key")


def _heatmap(jobs, keys, objective):
    import plotly.graph_objects as go

    grid = jobs.assign(objective=objective).pivot_table(index=keys[0], columns=keys[1], values="objective",
                                                        aggfunc="mean")
    z = grid.to_numpy(dtype=float)
    fig = go.Figure(go.Heatmap(z=z, x=[_text(v) for v in grid.columns], y=[_text(v) for v in grid.index],
                               colorscale="Viridis", colorbar=dict(title="accuracy"),
                               text=[["n/a" if np.isnan(v) else f"{v:.3f}" for v in row] for row in z],
                               texttemplate="%{text}", hovertemplate=f"{keys[0]}=%{{y}}<br>{keys[1]}=%{{x}}"
                                                                     "<br>objective %{z:.4f}<extra></extra>"))
    fig.update_xaxes(title_text=keys[1], type="category")
    fig.update_yaxes(title_text=keys[0], type="category")
    return _layout(fig, f"{objective.name} by two swept keys")


def _parallel(jobs, keys, objective):
    """One axis per swept key and the objective, one line per run (what TensorBoard HParams shows)."""
    import plotly.graph_objects as go

    dimensions = []
    for key in keys:
        values = jobs[key]
        if _numeric(values):
            numbers = values.astype(float)
            log = _wide(values, key)
            dimensions.append(dict(label=f"log10 {key}" if log else key,
                                   values=np.log10(numbers) if log else numbers))
        else:
            labels = values.astype(str)
            categories = sorted(set(labels))
            dimensions.append(dict(label=key, values=[categories.index(v) for v in labels],
                                   tickvals=list(range(len(categories))), ticktext=categories))
    filled = objective.fillna(0.0)
    dimensions.append(dict(label=f"{objective.name} (failed: 0)", values=filled, range=[0, max(1e-9, filled.max())]))
    fig = go.Figure(go.Parcoords(line=dict(color=filled, colorscale="Viridis", showscale=True), dimensions=dimensions))
    return _layout(fig, "parallel coordinates: swept keys and the objective", height=440, top=100)


def _history(jobs, keys, objective):
    """Each trial's objective in order, the best so far, failed trials marked."""
    import plotly.graph_objects as go

    best = objective.fillna(-np.inf).cummax().replace(-np.inf, np.nan)
    fig = go.Figure([go.Scatter(x=jobs["job"], y=objective, mode="markers", name="trial",
                                text=_hover(jobs, keys),
                                hovertemplate="%{text}<br>objective %{y:.4f}<extra></extra>"),
                     go.Scatter(x=jobs["job"], y=best, mode="lines", name="best so far")])
    failed = jobs[objective.isna()]
    if len(failed):
        low = float(np.nanmin(objective)) if objective.notna().any() else 0.0
        fig.add_trace(go.Scatter(x=failed["job"], y=[low] * len(failed), mode="markers", name="failed or diverged",
                                 marker=dict(symbol="x", color="grey")))
    fig.update_xaxes(title_text="trial", dtick=1)
    fig.update_yaxes(title_text=f"objective: {objective.name}")
    return _layout(fig, "optimisation history")


def _importance(jobs, keys, objective):
    """|Spearman rank correlation| of each parameter with the objective, over completed trials:
    a model-free stand-in for Optuna's fANOVA importances (which need scikit-learn)."""
    import plotly.graph_objects as go

    done = jobs.assign(objective=objective).dropna(subset=["objective"])
    scores = {}
    for key in keys:
        ranks = done[key].astype(str if not _numeric(done[key]) else float).rank()
        corr = ranks.corr(done["objective"].rank()) if len(done) > 2 else np.nan
        scores[key] = 0.0 if pd.isna(corr) else abs(float(corr))
    fig = go.Figure(go.Bar(x=list(scores.values()), y=list(scores), orientation="h"))
    fig.update_xaxes(title_text="|rank correlation with the objective|", range=[0, 1])
    return _layout(fig, "parameter importances (rank correlation)", height=120 + 40 * len(keys))


def _numeric(values) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def _wide(values, key: str) -> bool:
    """Whether to use a log axis: for lr, and for a positive range wider than 50x (as comparison.png)."""
    numbers = values.astype(float).dropna()
    return bool(len(numbers)) and (numbers > 0).all() and (key == "lr" or numbers.max() / numbers.min() > 50)
