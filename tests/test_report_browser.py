"""The report in a real headless browser (Debian's chromium through Playwright): it loads with
no script error, one row per run, sorting, filtering, two runs' diff, one curve per selected run,
and the same page with every network request refused.

Skips, saying why, where no browser is installed; CI installs one (MNIST_EXP_REQUIRE_BROWSER
makes a missing one a failure there)."""

import os
import shutil
from pathlib import Path

import pytest

from helpers import run_cli
from mnist_exp.analysis import results
from report_runs import make_run, make_sweep

pytestmark = pytest.mark.slow  # a page with plotly inlined takes ~3 s to load here
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _need_browser():
    why = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        why = "Playwright for Python is not installed (pip install -e '.[test]')"
    if why is None and not CHROMIUM:
        why = "no chromium on PATH (apt-get install chromium)"
    if why and os.environ.get("MNIST_EXP_REQUIRE_BROWSER"):
        pytest.fail(why)
    if why:
        pytest.skip(why)


@pytest.fixture(scope="module")
def browser():
    _need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def report(mnist_dir, tmp_path_factory):
    """The report of a real 2x2 sweep and a single run."""
    root = tmp_path_factory.mktemp("browser")
    paths = [make_sweep(root), make_run(root)]
    result = run_cli([*map(str, paths), "--out", str(root / "report.html")], cwd=root, module="mnist_exp.report")
    assert result.returncode == 0, result.stderr
    return root / "report.html", results.load_runs(paths)


class Page:
    """A page of the report and every script error and request it made."""

    def __init__(self, browser, path: Path, offline: bool = False):
        self.context = browser.new_context(viewport={"width": 1300, "height": 900}, offline=offline)
        self.errors, self.requests, self.refused = [], [], []
        if offline:
            self.context.route("**/*", self._only_files)
        self.page = self.context.new_page()
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(path.as_uri())
        self.page.wait_for_selector("body[data-ready]")

    def _only_files(self, route):
        if route.request.url.startswith(("file:", "data:")):
            route.continue_()
        else:
            self.refused.append(route.request.url)
            route.abort()

    def rows(self, visible_only=False):
        rows = self.page.locator("#run-table tbody tr" + (":not([hidden])" if visible_only else ""))
        return [rows.nth(i).get_attribute("data-run-dir") for i in range(rows.count())]

    def cell(self, run_dir: str, column: str) -> str:
        return self.page.locator(f'#run-table tr[data-run-dir="{run_dir}"] td[data-column="{column}"]').inner_text()

    def traces(self) -> list:
        return self.page.evaluate("document.getElementById('curves').data.map(t => t.name)")

    def select_only(self, *run_dirs: str) -> None:
        self.page.click("#select-none")
        for run_dir in run_dirs:
            self.page.check(f'#run-table tr[data-run-dir="{run_dir}"] input')

    def close(self):
        self.context.close()


@pytest.fixture
def page(browser, report):
    opened = Page(browser, report[0])
    yield opened
    assert opened.errors == []
    opened.close()


def test_the_report_loads_with_one_row_per_run_and_no_script_error(page, report):
    _, runs = report
    assert sorted(page.rows()) == sorted(runs["run_dir"])
    assert page.errors == [] and page.requests == [report[0].as_uri()]
    assert "lr" in page.page.locator("#run-table thead").inner_text()
    assert "channels" not in page.page.locator("#run-table thead").inner_text()


def test_sorting_by_a_column_reorders_the_rows(page, report):
    _, runs = report
    page.page.click('#run-table th[data-column="final_test_accuracy"]')
    ascending = [float(page.cell(d, "final_test_accuracy")) for d in page.rows()]
    assert ascending == sorted(ascending)
    page.page.click('#run-table th[data-column="final_test_accuracy"]')
    descending = [float(page.cell(d, "final_test_accuracy")) for d in page.rows()]
    assert descending == sorted(ascending, reverse=True) and descending != ascending
    page.page.click('#run-table th[data-column="name"]')
    assert [page.cell(d, "name") for d in page.rows()] == ["job 0", "job 1", "job 2", "job 3", "single"]


def test_the_filter_hides_rows_by_text_and_by_status(page, report):
    _, runs = report
    page.page.fill("#filter", "baseline")  # a tag of the single run
    single = runs[runs["name"] == "single"]["run_dir"].tolist()
    assert page.rows(visible_only=True) == single
    page.page.fill("#filter", "")
    assert len(page.rows(visible_only=True)) == len(runs)
    page.page.select_option("#status-filter", "completed")
    assert len(page.rows(visible_only=True)) == len(runs)
    assert "5 of 5 runs shown" in page.page.inner_text("#shown-count")


def test_selecting_two_runs_shows_their_diff_and_one_curve_each(page, report):
    _, runs = report
    jobs = runs.dropna(subset=["job"]).set_index("job")["run_dir"]
    assert len(page.traces()) == len(runs)  # a small report starts with every run selected
    assert page.page.locator("#diff").is_hidden()
    page.select_only(jobs[0], jobs[3])  # lr 0.005 -> 0.02, hidden_size 8 -> 16
    assert page.page.locator("#diff").is_visible()
    keys = page.page.locator("#diff-config tr[data-key]")
    assert [keys.nth(i).get_attribute("data-key") for i in range(keys.count())] == ["lr", "hidden_size"]
    assert "0.005" in keys.nth(0).inner_text() and "0.02" in keys.nth(0).inner_text()
    delta = page.page.locator('#diff-metrics tr[data-metric="final_test_accuracy"] td').nth(3).inner_text()
    expected = runs.set_index("run_dir")["final_test_accuracy"]
    assert float(delta) == pytest.approx(expected[jobs[3]] - expected[jobs[0]], abs=1e-3)
    assert len(page.traces()) == 2
    page.page.check(f'#run-table tr[data-run-dir="{jobs[1]}"] input')
    assert len(page.traces()) == 3 and page.page.locator("#diff").is_hidden()


def test_a_run_page_shows_config_figures_and_files(page, report):
    _, runs = report
    single = runs[runs["name"] == "single"].iloc[0]
    page.page.click(f'#run-table tr[data-run-dir="{single["run_dir"]}"] a')
    run_page = page.page.locator("#run-page")
    assert run_page.is_visible()
    text = run_page.inner_text()
    assert "Run: single" in text and single["run_dir"] in text and "Model card" in text and "metrics.csv" in text
    assert run_page.locator("img").count() == 2 and page.page.evaluate(
        "[...document.querySelectorAll('#run-page img')].every(i => i.complete && i.naturalWidth > 0)")
    assert page.page.evaluate("document.getElementById('per-class').data[0].y.length") == 10


def test_the_sweep_views_are_drawn(page):
    plots = page.page.locator("details.sweep .plot")
    assert plots.count() == 3
    assert page.page.evaluate("[...document.querySelectorAll('details.sweep .plot')].map(p => p.data[0].type)") == [
        "scatter", "heatmap", "parcoords"]


def test_offline_the_report_renders_the_same_and_asks_the_network_for_nothing(browser, report, page):
    offline = Page(browser, report[0], offline=True)
    try:
        assert offline.refused == [] and offline.errors == []
        assert offline.rows() == page.rows() and offline.traces() == page.traces()
        assert offline.page.inner_text("#summary") == page.page.inner_text("#summary")
        offline.page.click("#run-table tbody tr >> nth=0 >> a")
        assert offline.refused == [] and offline.errors == []
    finally:
        offline.close()
