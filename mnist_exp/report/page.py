"""The report page: one HTML file with plotly's JavaScript, the page's own script and style and
the data inline, so it opens offline, from a cluster's file system or as a mail attachment."""

import html
import json
from importlib import resources
from typing import Any, Dict, List


def render(data: Dict[str, Any], sweeps: List[Dict[str, Any]], title: str) -> str:
    """The page's text; the table and plots are drawn in the browser from the data."""
    from plotly.offline import get_plotlyjs

    own = resources.files("mnist_exp.report")
    return TEMPLATE.format(title=html.escape(title), style=own.joinpath("report.css").read_text(),
                           plotly=get_plotlyjs(), data=_script_json({**data, "sweeps": sweeps, "title": title}),
                           script=own.joinpath("report.js").read_text())


def _script_json(value: Any) -> str:
    """JSON safe inside <script>: no '</' to end it early, no '<!--'."""
    text = json.dumps(value, separators=(",", ":"), allow_nan=False, default=str)
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
<header><h1>{title}</h1><p id="summary"></p></header>
<section id="runs">
  <div class="controls">
    <input id="filter" type="search" placeholder="filter: any text in a row (name, tag, value)" size="40">
    <select id="status-filter"><option value="">every status</option></select>
    <button id="select-shown" type="button">select shown</button>
    <button id="select-none" type="button">select none</button>
    <span id="shown-count"></span>
  </div>
  <div class="table-wrap"><table id="run-table"><thead></thead><tbody></tbody></table></div>
</section>
<section id="diff" hidden><h2>Diff of two runs</h2><div id="diff-body"></div></section>
<section id="curves-section">
  <h2>Learning curves of the selected runs
    <select id="curve-metric">
      <option value="test_accuracy">test accuracy</option><option value="train_accuracy">train accuracy</option>
      <option value="test_loss">test loss</option><option value="train_loss">train loss</option>
    </select></h2>
  <div id="curves" class="plot"></div>
</section>
<section id="sweeps"></section>
<section id="run-page" hidden></section>
<script>{plotly}</script>
<script id="report-data" type="application/json">{data}</script>
<script>{script}</script>
</body>
</html>
"""
