"""The HTML report that ``remarket demo`` writes, in headless Chromium at desktop (1280 px)
and phone (375 px) width: the charts paint, their labels are in the DOM, and nothing is wider
than the window. The demo runs once for the module, into a temporary directory, as ``make
demo`` runs it (its shoppers, holdout, A/B step and a second currency included).

Needs Debian's ``chromium`` and Pillow: locally their absence skips the test, in CI it fails.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, service_missing

BLUE = (0x24, 0x63, 0xEB)
ORANGE = (0xC2, 0x41, 0x0C)
TEAL = (0x0F, 0x76, 0x6E)


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        service_missing("chromium is not installed (apt-get install -y chromium)")
    assert found is not None
    return found


def run_chromium(browser: str, tmp_path: Path, width: int, *args: str) -> str:
    run = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / f'profile-{width}'}",
            f"--window-size={width},2600",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout


def colour_count(image: Any, rgb: tuple[int, int, int]) -> int:
    return sum(n for n, c in image.getcolors(maxcolors=4_000_000) or [] if c == rgb)


@pytest.fixture(scope="module")
def report_html(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The page the demo wrote, and the path it printed for it."""
    chromium()  # no browser: skip before spending half a minute on the demo
    tmp = tmp_path_factory.mktemp("demo")
    page = tmp / "remarket-report.html"
    run = subprocess.run(
        [sys.executable, "-m", "remarket_mailer.cli", "demo"]
        + ["--database", f"sqlite:///{tmp / 'demo.db'}", "--outbox", str(tmp / "outbox")]
        + ["--html", str(page)],
        cwd=ROOT,  # the stock workflows and templates, as `make demo` finds them
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert f"HTML report: {page.resolve()}" in run.stdout
    return page.read_text(encoding="utf-8")


PROBE = """
<script>
const frame = document.getElementById("report");
frame.addEventListener("load", () => {
  const doc = frame.contentDocument;
  const out = document.getElementById("out");
  out.dataset.scrollWidth = doc.documentElement.scrollWidth;
  out.dataset.clientWidth = doc.documentElement.clientWidth;
  out.dataset.chartWidth = Math.round(doc.querySelector("svg.chart").getBoundingClientRect().width);
  out.dataset.charts = doc.querySelectorAll("svg.chart").length;
  out.textContent = doc.body.innerText + "\\n" + Array.from(doc.querySelectorAll("svg title"),
    (t) => t.textContent).join("\\n");
});
</script>
"""


def harness(tmp_path: Path, report_html: str, width: int, probe: bool) -> Path:
    """The report in an iframe exactly ``width`` px wide: headless Chromium will not make its
    window narrower than 500 px, but an iframe is a viewport of its own (media queries and
    all), like a phone's."""
    page = tmp_path / f"harness-{width}.html"
    page.write_text(
        '<!DOCTYPE html><html><body style="margin:0">'
        f'<iframe id="report" width="{width}" height="2600" style="border:0;display:block" '
        f'srcdoc="{html.escape(report_html, quote=True)}"></iframe>'
        + ('<pre id="out"></pre>' + PROBE if probe else "")
        + "</body></html>",
        encoding="utf-8",
    )
    return page


@pytest.mark.parametrize("width", [1280, 375])
def test_the_charts_paint(report_html: str, tmp_path: Path, width: int) -> None:
    browser = chromium()
    try:
        from PIL import Image
    except ImportError:
        service_missing("Pillow is not installed (pip install pillow)")
    png = tmp_path / f"report-{width}.png"
    page = harness(tmp_path, report_html, width, probe=False)
    run_chromium(browser, tmp_path, max(width, 500), f"--screenshot={png}", page.as_uri())
    with Image.open(png) as shot:
        image = shot.convert("RGB").crop((0, 0, width, 2600))
    colours = image.getcolors(maxcolors=4_000_000)
    assert colours is not None and len(colours) > 100, "the screenshot is (nearly) blank"
    # The header bar, the funnel and day bars (blue), the revenue line and converted bar
    # (orange), people's opens and clicks and the lift's marks (teal) are all painted.
    assert colour_count(image.crop((0, 0, width, 40)), (0x1F, 0x29, 0x33)) > width * 30
    assert colour_count(image, BLUE) > 3000
    assert colour_count(image, ORANGE) > 150
    assert colour_count(image, TEAL) > 300


@pytest.mark.parametrize("width", [1280, 375])
def test_labels_are_in_the_dom_and_nothing_overflows(
    report_html: str, tmp_path: Path, width: int
) -> None:
    browser = chromium()
    page = harness(tmp_path, report_html, width, probe=True)
    dom = run_chromium(
        browser,
        tmp_path,
        max(width, 500),
        "--virtual-time-budget=5000",
        "--dump-dom",
        page.as_uri(),
    )
    out = re.search(r'<pre id="out"([^>]*)>(.*?)</pre>', dom, re.S)
    assert out, dom[-2000:]
    data = dict(re.findall(r'data-([a-z-]+)="(\d+)"', out.group(1)))
    text = html.unescape(out.group(2))
    for label in (
        "Emails sent",
        "Orders credited",
        "Funnel of Abandoned cart",
        "Lift over the holdout",
        "Sends and revenue per day",
        "Variants of reminder_1",
        "A/B test: reminder_1",
        "Variant a",
        "Variant b",
        "Opened (people)",
        "Opened (machines)",
        "Converted",
        "95% CI",
        "Orders in other currencies are counted as conversions",  # the sample's USD order
        "Funnel of Win-back",
        "★ winner",  # the report's own verdict under the step's rule
        "A/B tests decided",  # the history: the demo's rule stopped the test
        "From then on only b is sent.",
    ):
        assert label in text, label
    assert "Significant:" in text or "Not significant yet:" in text  # the lift's verdict
    # Every workflow's funnel and days; the cart's lift and variants.
    assert int(data["charts"]) >= 6
    assert int(data["scroll-width"]) <= int(data["client-width"]), "wider than the window"
    assert int(data["client-width"]) > width - 20
    chart = int(data["chart-width"])
    # A chart fills its panel: half the page on a desktop, (nearly) the whole phone width.
    assert (520 < chart < 640) if width == 1280 else (300 < chart < width)
