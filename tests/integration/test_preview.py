"""The template preview page: in-process with TestClient, and in headless Chromium.

The screenshot test needs Debian's ``chromium`` and Pillow: locally their absence skips it
with the reason; under ``CI=true`` it fails (``.ci/run`` installs both).
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from remarket_mailer.rendering.preview import preview_router
from tests.conftest import ROOT, free_port, service_missing

TEMPLATES = ROOT / "templates"


def app_for(templates: Path) -> FastAPI:
    app = FastAPI()
    app.include_router(preview_router(templates))
    return app


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    copy = tmp_path / "templates"
    shutil.copytree(TEMPLATES, copy)
    return copy


@pytest.fixture
def client(templates: Path) -> TestClient:
    return TestClient(app_for(templates))


def subject(page: str) -> str:
    found = re.search(r'<dd id="subject">(.*?)</dd>', page)
    assert found, page
    return html.unescape(found.group(1))


def test_page_lists_templates_and_shows_subject_preheader_text_and_size(
    client: TestClient,
) -> None:
    page = client.get("/preview/", params={"template": "abandoned_cart/reminder_2"})
    assert page.status_code == 200
    text = page.text
    for name in (
        "abandoned_cart/reminder_1",
        "abandoned_cart/reminder_2",
        "abandoned_cart/last_chance",
    ):
        assert f">{name}</a>" in text
    # The default sample's contact is nl-NL: Dutch, with her name and the discount.
    assert subject(text) == "Ann, hier is 10% korting op je winkelwagen"
    assert "Je winkelwagen staat nog klaar, nu met een persoonlijke code." in text
    assert "Totaal: €\xa0124,35" in html.unescape(text)  # the text part
    assert re.search(r"<dt>HTML size</dt><dd>\d+\.\d KB", text)
    assert 'width="600"' in text and "sandbox" in text


def test_language_sample_and_width_switch(client: TestClient) -> None:
    params = {"template": "abandoned_cart/reminder_1", "locale": "ru", "width": "mobile"}
    page = client.get("/preview/", params=params).text
    assert subject(page) == "Ann, вы кое-что оставили в корзине"
    assert 'width="375"' in page
    minimal = client.get("/preview/", params={**params, "sample": "minimal"}).text
    assert subject(minimal) == "Вы кое-что оставили в корзине"
    english = client.get("/preview/", params={**params, "locale": "en"}).text
    assert subject(english) == "Ann, you left something in your cart"
    for language in ("en", "it", "nb", "nl", "ru", "vi"):
        assert f"locale={language}&amp;" in page


def test_the_iframe_gets_the_email_html_without_script_rights(client: TestClient) -> None:
    answer = client.get(
        "/preview/html", params={"template": "abandoned_cart/last_chance", "locale": "it"}
    )
    assert answer.status_code == 200
    assert answer.text.startswith("<!doctype html>")
    assert '<html lang="it"' in answer.text
    assert "Usa subito il mio codice" in answer.text
    policy = answer.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "sandbox" in policy


def test_an_edit_changes_the_version_and_the_page(client: TestClient, templates: Path) -> None:
    params = {"template": "abandoned_cart/reminder_1", "locale": "en"}
    before = client.get("/preview/version").json()["version"]
    assert f'const seen = "{before}"' in client.get("/preview/", params=params).text
    assert client.get("/preview/version").json()["version"] == before
    file = templates / "abandoned_cart" / "reminder_1.mjml"
    file.write_text(
        file.read_text().replace("you left something in your cart", "your cart misses you")
    )
    after = client.get("/preview/version").json()["version"]
    assert after != before
    assert subject(client.get("/preview/", params=params).text) == "Ann, your cart misses you"


def test_a_broken_template_shows_file_and_line(client: TestClient, templates: Path) -> None:
    file = templates / "abandoned_cart" / "reminder_1.mjml"
    source = file.read_text()
    line = source[: source.index('{{ _("Return to your cart") }}')].count("\n") + 1
    file.write_text(source.replace('{{ _("Return to your cart") }}', "{{ contact.nickname }}"))
    params = {"template": "abandoned_cart/reminder_1"}
    page = client.get("/preview/", params=params)
    assert page.status_code == 200
    assert f"{file}:{line}: UndefinedError" in html.unescape(page.text)
    assert client.get("/preview/html", params=params).status_code == 422
    # Fixed again: the page recovers without a restart.
    file.write_text(source)
    assert "Ann," in subject(client.get("/preview/", params=params).text)


def test_unknown_template_is_404(client: TestClient) -> None:
    assert client.get("/preview/", params={"template": "nope/nothing"}).status_code == 404
    assert client.get("/preview/html", params={"template": "../../etc/passwd"}).status_code == 404


def test_personal_data_is_escaped_on_the_page(client: TestClient, templates: Path) -> None:
    sample = templates / "_samples" / "default.yaml"
    sample.write_text(
        sample.read_text().replace("first_name: Ann", "first_name: <script>x()</script>")
    )
    page = client.get("/preview/", params={"template": "abandoned_cart/reminder_1"}).text
    assert "<script>x()" not in page
    assert "&lt;script&gt;x()" in page


# -- the real thing: a browser --------------------------------------------------------------


@pytest.fixture
def live_server(templates: Path) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app_for(templates), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        service_missing("chromium is not installed (apt-get install -y chromium)")
    assert found is not None
    return found


CREAM = (0xFF, 0xF7, 0xE6)
"""The background of the stock templates' discount section, drawn by the email's own HTML."""


def screenshot(browser: str, url: str, tmp_path: Path, size: tuple[int, int]) -> Any:
    """A PNG of ``url`` in headless Chromium at ``size`` (a window that wide), as RGB."""
    from PIL import Image

    png = tmp_path / f"preview-{size[0]}.png"
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
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={png}",
            f"--window-size={size[0]},{size[1]}",
            # Wait for the iframe to load and paint, not only the page around it.
            "--virtual-time-budget=5000",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0 and png.is_file(), run.stderr[-2000:]
    with Image.open(png) as shot:
        image = shot.convert("RGB")
    assert image.size == size
    return image


def count(image: Any, rgb: tuple[int, int, int], box: tuple[int, int, int, int]) -> int:
    region = image.crop(box)
    return sum(n for n, colour in region.getcolors(maxcolors=1_000_000) or [] if colour == rgb)


def test_preview_page_in_headless_chromium(live_server: str, tmp_path: Path) -> None:
    browser = chromium()
    try:
        import PIL  # noqa: F401
    except ImportError:
        service_missing("Pillow is not installed (pip install pillow)")
    url = f"{live_server}/preview/?template=abandoned_cart/reminder_2&width=desktop"
    page = httpx.get(url, timeout=30)
    assert page.status_code == 200
    assert subject(page.text) == "Ann, hier is 10% korting op je winkelwagen"

    image = screenshot(browser, url, tmp_path, (1200, 900))
    colours = image.getcolors(maxcolors=1_000_000)
    assert colours is not None and len(colours) > 200, "the screenshot is (nearly) blank"

    # The page itself: its dark header bar across the top.
    assert count(image, (0x1F, 0x29, 0x33), (0, 0, 1200, 40)) > 20_000
    # The email inside the iframe (right of the 250 px template list): the cream band of the
    # discount section, drawn by the email's own HTML.
    assert count(image, CREAM, (250, 0, 1200, 900)) > 20_000


def test_the_page_fits_a_600_px_window(client: TestClient) -> None:
    """A phone or a narrow window: the page scales to the device and its grid has a layout
    for widths under the 250 px list + a 600 px email."""
    page = client.get("/preview/?template=abandoned_cart/reminder_2").text
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    narrow = re.search(r"@media \(max-width: (\d+)px\) \{(.*?)\n\}", page, re.S)
    assert narrow and int(narrow.group(1)) >= 250 + 600, page
    assert "grid-template-columns: minmax(0, 1fr)" in narrow.group(2)
    assert "iframe { width: 100%; }" in narrow.group(2)


def test_preview_page_at_600_px_in_headless_chromium(live_server: str, tmp_path: Path) -> None:
    """At 600 px the email starts at the left edge under the template list; it used to sit
    right of a 250 px list, two thirds of it outside the window."""
    browser = chromium()
    try:
        import PIL  # noqa: F401
    except ImportError:
        service_missing("Pillow is not installed (pip install pillow)")
    url = f"{live_server}/preview/?template=abandoned_cart/reminder_2&width=desktop"
    image = screenshot(browser, url, tmp_path, (600, 1800))
    assert count(image, CREAM, (0, 0, 250, 1800)) > 5_000
    assert count(image, CREAM, (0, 0, 600, 1800)) > 15_000


def test_python_internals_show_as_a_problem_not_a_500(templates: Path) -> None:
    path = templates / "abandoned_cart" / "reminder_1.mjml"
    text = path.read_text(encoding="utf-8")
    path.write_text(
        text.replace("<mj-text>", "<mj-text>{{ '' | attr('__class__') | attr('__mro__') }}", 1),
        encoding="utf-8",
    )
    client = TestClient(app_for(templates), raise_server_exceptions=False)
    page = client.get("/preview/", params={"template": "abandoned_cart/reminder_1"})
    assert page.status_code == 200
    assert "attribute &#x27;__class__&#x27; of &#x27;str&#x27; object is unsafe" in page.text
    frame = client.get("/preview/html", params={"template": "abandoned_cart/reminder_1"})
    assert frame.status_code == 422 and "unsafe" in frame.text
