"""report.html in a real browser: Debian's chromium, headless, driven by selenium through Debian's chromedriver.

The page loads from file:// with no network and no console error, the table holds every row, a sort and a
filter work, and every plot draws. Skips with the reason when chromium, chromedriver or selenium is missing,
except under ``CI=true`` (.ci/run installs them), where that fails.
"""

from __future__ import annotations

import os
import shutil

import pytest
from test_html import HOSTILE, make_sweep, sweep_rows

from rnnexp.review import axes, html
from rnnexp.review.inputs import load, load_many

pytestmark = pytest.mark.slow

CHROMIUM = ("chromium", "chromium-browser")


def _missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    if not any(shutil.which(c) for c in CHROMIUM):
        return "chromium is not on PATH (apt-get install chromium chromium-driver; .ci/run does)"
    if not shutil.which("chromedriver"):
        return "chromedriver is not on PATH (apt-get install chromium-driver; .ci/run does)"
    return None


@pytest.fixture(scope="module")
def browser():
    reason = _missing()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true needs a browser: {reason}", pytrace=False)
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = next(shutil.which(c) for c in CHROMIUM if shutil.which(c))
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1000", "--proxy-server=127.0.0.1:9"):  # fmt: skip
        options.add_argument(arg)  # a proxy that answers nothing: any request for the network fails loudly
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def open_page(driver, path):
    """Load ``path`` from file:// and wait until page.js has counted the rows and every plot has drawn."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get_log("browser")  # drop what an earlier page logged
    driver.get(path.as_uri())
    WebDriverWait(driver, 60).until(
        lambda d: d.execute_script(
            "const plots = document.querySelectorAll('.plot');"
            "return document.getElementById('shown').textContent !== '' &&"
            " Array.from(plots).every(p => p.querySelector('.main-svg'));"
        )
    )


TICKS = """
const bad = [];
document.querySelectorAll('.plot').forEach((plot, p) => {
  plot.querySelectorAll('.xaxislayer-above, .yaxislayer-above').forEach(layer => {
    const x = layer.classList.contains('xaxislayer-above');
    const boxes = Array.from(layer.querySelectorAll('text')).filter(t => t.textContent.trim())
      .map(t => t.getBoundingClientRect()).sort((a, b) => x ? a.left - b.left : a.top - b.top);
    if (boxes.length > arguments[0]) bad.push(`plot ${p}: ${boxes.length} tick labels`);
    for (let i = 1; i < boxes.length; i++) {
      const a = boxes[i - 1], b = boxes[i];
      if (x ? b.left < a.right - 1 : b.top < a.bottom - 1) bad.push(`plot ${p}: tick labels overlap`);
    }
  });
});
return bad;
"""


def illegible_ticks(driver) -> list[str]:
    """Per plot axis: more than MAX_TICKS tick labels, or two that overlap, as drawn by the browser."""
    return driver.execute_script(TICKS, axes.MAX_TICKS)


def problems(driver) -> list[dict]:
    """Console messages worse than info: errors, failed requests, warnings."""
    return [e for e in driver.get_log("browser") if e["level"] not in ("INFO", "DEBUG")]


def visible_rows(driver) -> int:
    return driver.execute_script("return Array.from(document.querySelectorAll('#results tbody tr')).filter(r => "
                                 "!r.hidden).length")  # fmt: skip


def column(driver, name: str) -> list[str]:
    return driver.execute_script(
        "const heads = Array.from(document.querySelectorAll('#results thead tr:first-child th'));"
        "const i = heads.findIndex(h => h.textContent.trim() === arguments[0]);"
        "return Array.from(document.querySelectorAll('#results tbody tr')).filter(r => !r.hidden)"
        ".map(r => r.cells[i].textContent);",
        name,
    )


@pytest.mark.parametrize("n_sizes", [2, 50, 167])  # 12, 300 and 1,002 rows
def test_page_loads_offline_sorts_filters_and_draws(tmp_path, browser, n_sizes):
    from selenium.webdriver.common.by import By

    rows = sweep_rows(n_sizes)
    rows[3].update(status="error", error=HOSTILE[0], time_median_ms=None)
    rows[4]["error"] = HOSTILE[1]
    rows[5]["error"] = HOSTILE[2]  # an <img onerror=alert()>: had it run, the alert would fail the next command
    folder = make_sweep(tmp_path / "sweep", rows)
    page = html.write(load(folder), [folder], folder)
    open_page(browser, page)
    assert problems(browser) == []
    assert visible_rows(browser) == len(rows)
    assert browser.execute_script("return !document.querySelector('#results script, #results img')")
    assert set(HOSTILE[:3]) <= set(column(browser, "error"))  # shown as the text they are
    assert column(browser, "status")[0] == "error"  # failures first

    sizes = browser.find_element(By.XPATH, "//table[@id='results']//th/button[text()='hidden_size']")
    sizes.click()
    ascending = [int(v) for v in column(browser, "hidden_size")]
    assert ascending == sorted(ascending)  # numbers sort as numbers: 8 before 12
    sizes.click()
    assert [int(v) for v in column(browser, "hidden_size")] == sorted(ascending, reverse=True)

    search = browser.find_element(By.ID, "search")
    search.send_keys("lstm")
    assert set(column(browser, "cell")) == {"lstm"}
    assert visible_rows(browser) == sum(r["cell"] == "lstm" for r in rows)
    search.clear()
    search.send_keys(" ")  # an input event with nothing to match: every row again
    assert visible_rows(browser) == len(rows)
    box = browser.find_element(By.CSS_SELECTOR, "input[aria-label='filter hidden_size']")
    box.send_keys(">100")
    assert visible_rows(browser) == sum(r["hidden_size"] > 100 for r in rows)
    box.clear()
    browser.find_element(By.ID, "failed-only").click()
    assert visible_rows(browser) == 1

    drawn = browser.execute_script(
        "return Array.from(document.querySelectorAll('.plot')).map(p => "
        "p.querySelectorAll('.scatterlayer .trace path, .scatterlayer .trace .point, canvas').length)"
    )
    assert len(drawn) >= 3 and all(n > 0 for n in drawn)  # every plot has marks, not just empty axes
    assert illegible_ticks(browser) == []
    assert problems(browser) == []


def test_several_sweeps_draw_one_series_each(tmp_path, browser):
    from selenium.webdriver.common.by import By

    a = make_sweep(tmp_path / "before", sweep_rows(4, commit="1111111aaaa"))
    b = make_sweep(tmp_path / "after", sweep_rows(4, commit="2222222bbbb"))
    page = html.write(load_many([a, b]), [a, b], tmp_path)
    open_page(browser, page)
    assert problems(browser) == []
    legend = browser.execute_script(
        "return Array.from(document.querySelector('.plot').querySelectorAll('.legendtext')).map(t => t.textContent)"
    )
    assert legend == ["before (1111111aa)", "after (2222222bb)"]
    assert visible_rows(browser) == 2 * 24

    # clicking a sweep in the legend hides its series in every panel (one legend group per sweep)
    from selenium.webdriver.support.ui import WebDriverWait

    browser.find_element(By.CSS_SELECTOR, ".plot .legend .traces .legendtoggle").click()
    state = "return document.querySelector('.plot').data.map(t => [t.name, t.visible === 'legendonly'])"
    # plotly waits out a double-click before it toggles
    hidden = WebDriverWait(browser, 10).until(lambda d: [h for h in d.execute_script(state) if h[1]] and
                                              d.execute_script(state))  # fmt: skip
    assert {name for name, off in hidden if off} == {"before (1111111aa)"}
    assert all(off == (name == "before (1111111aa)") for name, off in hidden)


def test_hover_names_the_configuration_and_zoom_rescales(tmp_path, browser):
    rows = sweep_rows(3)
    rows[0]["init"] = HOSTILE[0]  # a hover box shows it as text too
    folder = make_sweep(tmp_path / "s", rows)
    open_page(browser, html.write(load(folder), [folder], folder))
    hover = browser.execute_script(
        "const plot = document.querySelector('.plot');"
        "window.Plotly.Fx.hover(plot, [{curveNumber: 0, pointNumber: 0}]);"
        "return plot.querySelector('.hoverlayer').textContent;"
    )
    assert "cell=rnn" in hover and "backend=numpy" in hover and "hidden_size=4" in hover and "job 0" in hover
    assert HOSTILE[0] in hover and browser.execute_script("return !document.querySelector('.hoverlayer script')")
    zoomed = browser.execute_script(
        "const plot = document.querySelector('.plot');"
        "return window.Plotly.relayout(plot, {'xaxis.range': [5, 9]}).then(() => plot.layout.xaxis.range);"
    )
    assert zoomed == [5, 9]
    assert problems(browser) == []
