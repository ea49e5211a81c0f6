// The report's behaviour: the run table (sort, filter, select), the curves of the selected
// runs, the diff of two selected runs, a run's page and the sweep views, all from #report-data.
"use strict";
const DATA = JSON.parse(document.getElementById("report-data").textContent);
const RUNS = DATA.runs;
// val acc only where some run has a validation split; it then chooses the runs shown first
const VALIDATED = RUNS.some(r => r.metrics.final_val_accuracy !== null && r.metrics.final_val_accuracy !== undefined);
const METRICS = [...(VALIDATED ? [["final_val_accuracy", "val acc"]] : []), ["final_test_accuracy", "test acc"],
  ["best_test_accuracy", "best acc"], ["final_test_loss", "test loss"], ["epochs_run", "epochs"], ["wall_seconds", "seconds"]];
const CHOOSER = VALIDATED ? "final_val_accuracy" : "final_test_accuracy";
const SHOWN_KEYS = DATA.keys.filter(k => k !== "data.name" && k !== "arch");
const COLUMNS = [
  {id: "name", label: "name", get: r => r.name},
  {id: "tags", label: "tags", get: r => r.tags},
  {id: "status", label: "status", get: r => r.status},
  {id: "data", label: "data", get: r => r.data},
  {id: "arch", label: "arch", get: r => r.arch},
  ...SHOWN_KEYS.map(k => ({id: k, label: k, get: r => r.values[k], text: r => r.text[k]})),
  ...METRICS.map(([m, label]) => ({id: m, label: label, get: r => r.metrics[m], text: r => fmt(r.metrics[m])})),
  {id: "started", label: "started", get: r => r.started, text: r => (r.started || "").slice(0, 19).replace("T", " ")},
];
const selected = new Set();
let sortState = {column: null, ascending: true};

function fmt(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "number" && !Number.isInteger(value)) {
    return Math.abs(value) >= 1e-3 && Math.abs(value) < 1e4 ? String(+value.toPrecision(4)) : value.toExponential(2);
  }
  return String(value);
}
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child instanceof Node ? child : String(child ?? ""));
  return node;
}
function label(run) {
  const keys = SHOWN_KEYS.filter(k => run.text[k] !== "").map(k => `${k}=${run.text[k]}`).join(" ");
  return `${run.name}${keys ? " · " + keys : ""}`;
}

function buildTable() {
  const head = el("tr", {}, el("th", {}, ""));
  COLUMNS.forEach((c, i) => head.append(el("th", {"data-column": c.id, onclick: () => sortBy(i), title: "sort"}, c.label)));
  document.querySelector("#run-table thead").append(head);
  const body = document.querySelector("#run-table tbody");
  for (const run of RUNS) {
    const box = el("input", {type: "checkbox", "aria-label": "select " + run.name, onchange: e => select(run.id, e.target.checked)});
    const row = el("tr", {"data-run-dir": run.dir, "data-id": run.id, "data-status": run.status,
                          class: "status-" + run.status}, el("td", {}, box));
    for (const c of COLUMNS) {
      const cell = el("td", {"data-column": c.id}, c.text ? c.text(run) : fmt(c.get(run)));
      if (c.id === "name") {
        cell.textContent = "";
        cell.append(el("a", {href: "#run-page", onclick: e => { e.preventDefault(); showRun(run); }}, run.name));
      }
      if (c.id === "status" && run.reason) cell.title = run.reason;
      row.append(cell);
    }
    row.dataset.search = row.textContent.toLowerCase() + " " + run.dir.toLowerCase();
    body.append(row);
  }
  const statuses = document.getElementById("status-filter");
  for (const s of [...new Set(RUNS.map(r => r.status))].sort()) statuses.append(el("option", {value: s}, s));
}

function sortBy(index) {
  const column = COLUMNS[index];
  sortState = {column: index, ascending: sortState.column === index ? !sortState.ascending : true};
  const body = document.querySelector("#run-table tbody");
  const rows = [...body.rows];
  const key = row => column.get(RUNS[+row.dataset.id]);
  rows.sort((a, b) => {
    const x = key(a), y = key(b);
    if (x === null || x === undefined || x === "") return 1;  // blanks last either way
    if (y === null || y === undefined || y === "") return -1;
    const order = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y), undefined, {numeric: true});
    return sortState.ascending ? order : -order;
  });
  body.append(...rows);
  document.querySelectorAll("#run-table th").forEach(th => th.removeAttribute("aria-sort"));
  document.querySelector(`#run-table th[data-column="${CSS.escape(column.id)}"]`)
    .setAttribute("aria-sort", sortState.ascending ? "ascending" : "descending");
}

function applyFilter() {
  const text = document.getElementById("filter").value.trim().toLowerCase();
  const status = document.getElementById("status-filter").value;
  let shown = 0;
  for (const row of document.querySelectorAll("#run-table tbody tr")) {
    row.hidden = (text && !text.split(/\s+/).every(word => row.dataset.search.includes(word)))
      || (status && row.dataset.status !== status);
    shown += row.hidden ? 0 : 1;
  }
  document.getElementById("shown-count").textContent = `${shown} of ${RUNS.length} runs shown`;
}

function select(id, on) {
  if (on) selected.add(id); else selected.delete(id);
  const box = document.querySelector(`#run-table tr[data-id="${id}"] input`);
  if (box) box.checked = on;
  drawCurves();
  drawDiff();
}

function drawCurves() {
  const metric = document.getElementById("curve-metric").value;
  const traces = [...selected].sort((a, b) => a - b).filter(id => DATA.history[id]).map(id => {
    const run = RUNS[id], curve = DATA.history[id];
    return {x: curve.epoch, y: curve[metric], mode: curve.epoch.length > 1 ? "lines+markers" : "markers",
            marker: {size: 5}, name: label(run) + (run.status === "completed" ? "" : ` (${run.status})`),
            line: {dash: run.status === "completed" ? "solid" : "dot"},
            hovertemplate: `${run.name}<br>epoch %{x}<br>${metric} %{y:.4f}<extra></extra>`};
  });
  const many = traces.length > 12;
  Plotly.react("curves", traces, {
    height: many ? 520 : 420, template: "plotly_white", margin: {l: 60, r: 20, t: 20, b: 50},
    xaxis: {title: {text: "epoch"}, dtick: 1, rangemode: "tozero"},
    yaxis: {title: {text: metric.replace("_", " ")}},
    showlegend: true, legend: many ? {orientation: "h", y: -0.2, font: {size: 10}} : {font: {size: 11}},
    annotations: traces.length ? [] : [{text: "select runs in the table to see their curves", showarrow: false,
                                        xref: "paper", yref: "paper", x: 0.5, y: 0.5}],
  }, {responsive: true, displaylogo: false});
}

function diffRows(a, b) {
  const rows = DATA.keys.filter(k => JSON.stringify(a.values[k]) !== JSON.stringify(b.values[k]))
    .map(k => [k, a.text[k], b.text[k]]);
  return rows;
}

function drawDiff() {
  const section = document.getElementById("diff"), body = document.getElementById("diff-body");
  if (selected.size !== 2) { section.hidden = true; body.textContent = ""; return; }
  const [a, b] = [...selected].sort((x, y) => x - y).map(id => RUNS[id]);
  body.textContent = "";
  body.append(el("p", {}, el("b", {}, "A: "), a.name, " ", el("code", {}, a.dir)),
              el("p", {}, el("b", {}, "B: "), b.name, " ", el("code", {}, b.dir)));
  const config = diffRows(a, b);
  const table = el("table", {class: "diff", id: "diff-config"}, el("tr", {}, el("th", {}, "config key"), el("th", {}, "A"), el("th", {}, "B")));
  config.forEach(([k, x, y]) => table.append(el("tr", {"data-key": k}, el("td", {}, k), el("td", {}, x), el("td", {}, y))));
  body.append(config.length ? table : el("p", {}, "The same config (where and how they ran aside)."));
  const metrics = el("table", {class: "diff", id: "diff-metrics"},
    el("tr", {}, el("th", {}, "metric"), el("th", {}, "A"), el("th", {}, "B"), el("th", {}, "B − A")));
  metrics.append(el("tr", {}, el("td", {}, "status"), el("td", {}, a.status), el("td", {}, b.status), el("td", {}, a.status === b.status ? "" : "differs")));
  for (const [m] of METRICS) {
    const x = a.metrics[m], y = b.metrics[m];
    const delta = x === null || y === null ? "" : (y - x >= 0 ? "+" : "") + fmt(y - x);
    metrics.append(el("tr", {"data-metric": m}, el("td", {}, m), el("td", {}, fmt(x)), el("td", {}, fmt(y)), el("td", {}, delta)));
  }
  body.append(metrics);
  section.hidden = false;
}

function image(src, alt) {
  if (!src) return el("p", {class: "muted"}, `no ${alt}`);
  return src.startsWith("data:") ? el("img", {src: src, alt: alt, loading: "lazy"})
    : el("p", {}, el("a", {href: src}, alt), " (linked: too many runs to inline every figure)");
}

function showRun(run) {
  const page = document.getElementById("run-page");
  page.textContent = "";
  page.append(el("h2", {}, "Run: ", run.name, " ", el("span", {class: "status status-" + run.status}, run.status)));
  if (run.reason) page.append(el("p", {class: "reason"}, run.reason));
  const config = {...DATA.common};
  for (const k of DATA.keys) config[k] = run.text[k];
  const table = el("table", {class: "config"});
  for (const [k, v] of Object.entries(config).sort()) if (v !== "") table.append(el("tr", {}, el("th", {}, k), el("td", {}, v)));
  const files = el("ul", {class: "files"}, ...run.files.map(f => el("li", {}, el("a", {href: run.link + "/" + f}, f))));
  page.append(el("div", {class: "columns"},
    el("div", {}, el("h3", {}, "Config"), table),
    el("div", {}, el("h3", {}, "Files"), el("p", {}, el("code", {}, run.dir)), files)));
  page.append(el("h3", {}, "Per-class test accuracy"), el("div", {id: "per-class", class: "plot small"}));
  page.append(el("div", {class: "columns"},
    el("div", {}, el("h3", {}, "Confusion matrix"), image(run.images.confusion, "confusion matrix")),
    el("div", {}, el("h3", {}, "Misclassified test images"), image(run.images.misclassified, "misclassified images"))));
  page.append(el("h3", {}, "Model card"), run.model_card ? el("pre", {class: "card"}, run.model_card)
    : el("p", {}, el("a", {href: run.link + "/model_card.md"}, "model_card.md")));
  page.hidden = false;
  const classes = Object.keys(run.per_class);
  if (classes.length) {
    Plotly.newPlot("per-class", [{type: "bar", x: classes, y: classes.map(c => run.per_class[c]),
      hovertemplate: "class %{x}: %{y:.3f}<extra></extra>"}],
      {height: 260, template: "plotly_white", margin: {l: 50, r: 20, t: 10, b: 40},
       xaxis: {type: "category"}, yaxis: {range: [0, 1], title: {text: "accuracy"}}}, {displaylogo: false});
  } else {
    document.getElementById("per-class").textContent = "no per-class accuracy recorded";
  }
  page.scrollIntoView();
}

function buildSweeps() {
  const section = document.getElementById("sweeps");
  for (const sweep of DATA.sweeps) {
    const box = el("details", {class: "sweep", "data-sweep-dir": sweep.dir},
      el("summary", {}, `${sweep.search ? "Optuna search" : "Sweep"} ${sweep.dir}: ${sweep.keys.join(", ") || "no swept key"}`));
    const plots = sweep.figures.map(() => el("div", {class: "plot"}));
    box.append(...plots);
    box.addEventListener("toggle", () => {  // drawn when opened: a hidden plot has no size
      if (!box.open || box.dataset.drawn) return;
      box.dataset.drawn = "1";
      sweep.figures.forEach((text, i) => { const f = JSON.parse(text); Plotly.newPlot(plots[i], f.data, f.layout, {responsive: true, displaylogo: false}); });
    });
    section.append(box);
  }
  if (DATA.sweeps.length) {
    section.prepend(el("h2", {}, "Sweep views"));
    section.querySelector("details").open = true;
  }
}

function start() {
  const counts = {};
  RUNS.forEach(r => counts[r.status] = (counts[r.status] || 0) + 1);
  document.getElementById("summary").textContent = `${RUNS.length} runs (` +
    Object.entries(counts).map(([s, n]) => `${n} ${s}`).join(", ") + ")" +
    (DATA.keys.length ? `; varying: ${DATA.keys.join(", ")}` : "");
  buildTable();
  const judged = r => r.status === "completed" ? (r.metrics[CHOOSER] ?? -1) : -1;
  const ranked = [...RUNS].sort((a, b) => judged(b) - judged(a));
  (RUNS.length <= 20 ? RUNS : ranked.slice(0, 10)).forEach(r => { selected.add(r.id); document.querySelector(`#run-table tr[data-id="${r.id}"] input`).checked = true; });
  document.getElementById("filter").addEventListener("input", applyFilter);
  document.getElementById("status-filter").addEventListener("change", applyFilter);
  document.getElementById("curve-metric").addEventListener("change", drawCurves);
  document.getElementById("select-shown").addEventListener("click", () => {
    document.querySelectorAll("#run-table tbody tr:not([hidden])").forEach(row => selected.add(+row.dataset.id));
    document.querySelectorAll("#run-table tbody tr").forEach(row => row.querySelector("input").checked = selected.has(+row.dataset.id));
    drawCurves(); drawDiff();
  });
  document.getElementById("select-none").addEventListener("click", () => {
    selected.clear();
    document.querySelectorAll("#run-table tbody input").forEach(box => box.checked = false);
    drawCurves(); drawDiff();
  });
  applyFilter();
  drawCurves();
  drawDiff();
  buildSweeps();
  document.body.dataset.ready = "1";
}
start();
