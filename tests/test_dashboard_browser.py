"""Real-browser test of the dashboard: `streamlit run` on 127.0.0.1, driven by headless Chromium.

Uses Debian's `chromium` and `chromium-driver` packages through the W3C WebDriver protocol with
a small standard-library client (below), so nothing is downloaded. Clicks through every page,
does one interaction on each, and saves a screenshot per page:

  UPDATE_SCREENSHOTS=1 pytest tests/test_dashboard_browser.py   # real saved_models/ + tuning/,
                                                                # screenshots to docs/screenshots/
  pytest tests/test_dashboard_browser.py                        # tiny fixture models, tmp dir

Skipped (with the reason) only when Chromium or its driver is not installed.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
UPDATE = os.environ.get("UPDATE_SCREENSHOTS") == "1"

pytestmark = [
    pytest.mark.skipif(not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
                       reason="headless browser test needs Debian's chromium and chromium-driver "
                              "(apt-get install -y chromium chromium-driver)"),
    pytest.mark.filterwarnings(
        "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"),
]

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, body=None, timeout: float = 60):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        payload = exc.read().decode(errors="replace")
        raise RuntimeError(f"WebDriver {method} {url}: {exc.code} {payload[:500]}") from None


def wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


class Browser:
    """The few WebDriver calls this test needs."""

    def __init__(self, driver_url: str, profile: str):
        self.base = driver_url
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
                "--window-size=1440,1900", "--hide-scrollbars", "--force-device-scale-factor=1"]},
        }}}
        self.sid = http("POST", f"{driver_url}/session", caps, timeout=120)["value"]["sessionId"]
        self.url = f"{driver_url}/session/{self.sid}"

    def get(self, url):
        http("POST", f"{self.url}/url", {"url": url})

    def js(self, script, *args):
        return http("POST", f"{self.url}/execute/sync", {"script": script, "args": list(args)})["value"]

    def find_all(self, css):
        return [e[ELEMENT] for e in http("POST", f"{self.url}/elements",
                                         {"using": "css selector", "value": css})["value"]]

    def click(self, element_id):
        http("POST", f"{self.url}/element/{element_id}/click", {})

    def send_keys(self, element_id, text):
        http("POST", f"{self.url}/element/{element_id}/value", {"text": text})

    def click_at(self, x: float, y: float) -> None:
        """A real mouse click at viewport coordinates (for charts)."""
        http("POST", f"{self.url}/actions", {"actions": [{
            "type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"},
            "actions": [{"type": "pointerMove", "duration": 0, "x": int(x), "y": int(y),
                         "origin": "viewport"},
                        {"type": "pointerDown", "button": 0}, {"type": "pointerUp", "button": 0}]}]})

    def wait_for(self, css: str, timeout: float = 60) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.find_all(css)
            if found:
                return found
            time.sleep(0.3)
        raise AssertionError(f"no {css} within {timeout:.0f} s")

    def clear(self, element_id):
        http("POST", f"{self.url}/element/{element_id}/clear", {})

    def screenshot(self, path: Path):
        png = base64.b64decode(http("GET", f"{self.url}/screenshot")["value"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png)

    def text(self) -> str:
        return self.js("return document.body.innerText;") or ""

    def wait_text(self, needle: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.text():
                return
            time.sleep(0.3)
        raise AssertionError(f"'{needle}' did not appear within {timeout:.0f} s; page says:\n"
                             + self.text()[:2000])

    def wait_idle(self, timeout: float = 60) -> None:
        """Until Streamlit has finished the script run (no running indicator) and nothing moves."""
        deadline = time.monotonic() + timeout
        quiet = 0
        while time.monotonic() < deadline:
            running = self.js(
                "return !!document.querySelector('[data-testid=\"stStatusWidget\"]') || "
                "!!document.querySelector('[data-testid=\"stSkeleton\"]') || "
                "!!document.querySelector('[data-testid=\"stSpinner\"]');")
            quiet = 0 if running else quiet + 1
            if quiet >= 4:
                return
            time.sleep(0.25)
        raise AssertionError(f"the app stayed busy for {timeout:.0f} s")

    def assert_no_exception(self) -> None:
        errors = self.find_all('[data-testid="stException"]')
        assert not errors, "the page shows a Python exception:\n" + self.text()[:3000]

    def click_text(self, css: str, needle: str) -> None:
        for el in self.find_all(css):
            label = self.js("return arguments[0].innerText;", {ELEMENT: el}) or ""
            if needle in label:
                self.click(el)
                return
        raise AssertionError(f"no {css} with text '{needle}'")

    def quit(self):
        try:
            http("DELETE", self.url, timeout=20)
        except Exception:
            pass


@pytest.fixture(scope="module")
def app_env(tmp_path_factory):
    env = dict(os.environ)
    env.pop("UPDATE_SCREENSHOTS", None)
    if not UPDATE:
        sys.path.insert(0, str(Path(__file__).parent))
        from dashboard_fixtures import shared_artifacts

        models, tuning = shared_artifacts(tmp_path_factory)
        env["SAVED_MODELS_DIR"], env["TUNING_DIR"] = str(models), str(tuning)
    return env


@pytest.fixture(scope="module")
def server(app_env, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("streamlit") / "server.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "dashboard/app.py",
             "--server.headless", "true", "--server.port", str(port),
             "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none"],
            cwd=REPO, env=app_env, stdout=fh, stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{port}/_stcore/health", 60)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        server_log = log.read_text(errors="replace")
        assert "Traceback" not in server_log, server_log[-3000:]


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    port = free_port()
    driver = subprocess.Popen([CHROMEDRIVER, f"--port={port}"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    b = None
    try:
        wait_http(f"http://127.0.0.1:{port}/status", 30)
        b = Browser(f"http://127.0.0.1:{port}", profile)
        yield b
    finally:
        if b is not None:
            b.quit()
        driver.terminate()
        try:
            driver.wait(timeout=10)
        except subprocess.TimeoutExpired:
            driver.kill()
        shutil.rmtree(profile, ignore_errors=True)


def shots_dir(tmp_path_factory) -> Path:
    return REPO / "docs" / "screenshots" if UPDATE else tmp_path_factory.getbasetemp() / "screenshots"


def make_upload(path: Path) -> None:
    """A 400x300 picture: a CIFAR-10 test horse enlarged onto a wider canvas when the archive is
    available (nicer screenshots), else a colour gradient."""
    import numpy as np
    from PIL import Image

    try:
        sys.path.insert(0, str(REPO))
        from trainer.data import load_cifar10, resolve_archive

        if resolve_archive() is None:
            raise FileNotFoundError
        data = load_cifar10(splits=("test",))
        horse = data.x_test[np.flatnonzero(data.y_test == 7)[0]]
        canvas = Image.new("RGB", (400, 300), tuple(int(v) for v in horse.reshape(-1, 3).mean(0)))
        canvas.paste(Image.fromarray(horse).resize((300, 300), Image.Resampling.BICUBIC), (50, 0))
        canvas.save(path)
    except Exception:
        yy, xx = np.mgrid[0:300, 0:400]
        Image.fromarray(np.stack([xx % 256, yy % 256, (xx + yy) % 256], -1).astype("uint8")).save(path)


def goto(browser: Browser, label: str) -> None:
    """Clicks the sidebar link of a page, like a user."""
    browser.click_text('[data-testid="stSidebarNav"] a', label)


def test_click_through_every_page(server, browser, tmp_path_factory):
    out = shots_dir(tmp_path_factory)

    # 1. Overview (the default page)
    browser.get(server)
    browser.wait_text("Model overview")
    browser.wait_text("Best accuracy")
    browser.wait_idle()
    browser.assert_no_exception()
    browser.click_text('[data-testid="stButtonGroup"] button', "TFLite")
    browser.wait_idle()
    browser.assert_no_exception()
    browser.wait_for(".js-plotly-plot")
    browser.screenshot(out / "1_overview.png")

    # 2. Confusion matrix explorer: normalised view, then click the cat -> dog cell
    goto(browser, "Confusion explorer")
    browser.wait_text("Confusion matrix explorer")
    browser.wait_idle(90)
    browser.click_text('[data-testid="stButtonGroup"] button', "Normalised")
    browser.wait_idle(60)
    browser.assert_no_exception()
    browser.wait_for(".js-plotly-plot")
    time.sleep(1.0)  # let Plotly finish laying out
    x, y = browser.js("""
        const gd = document.querySelectorAll('.js-plotly-plot')[0];
        const fl = gd._fullLayout, r = gd.getBoundingClientRect();
        return [r.left + fl.xaxis._offset + fl.xaxis.l2p(5), r.top + fl.yaxis._offset + fl.yaxis.l2p(3)];
    """)
    browser.click_at(x, y)
    browser.wait_text("cat → dog:", 60)
    browser.wait_idle(60)
    browser.screenshot(out / "2_confusion.png")

    # 3. Try it: upload a picture
    goto(browser, "Try it")
    browser.wait_text("Upload a picture")
    browser.wait_idle()
    picture = tmp_path_factory.mktemp("upload") / "photo.png"
    make_upload(picture)
    browser.send_keys(browser.find_all('[data-testid="stFileUploader"] input[type="file"]')[0],
                      str(picture))
    browser.wait_text("What the model sees", 120)
    browser.wait_idle(120)
    browser.assert_no_exception()
    assert "400×300" in browser.text(), "the resize note is missing"
    browser.screenshot(out / "3_try_it.png")

    # 4. Live latency: measure (small run in the background process)
    goto(browser, "Live latency")
    browser.wait_text("Measure now")
    browser.wait_idle()
    browser.click_text('[data-testid="stButton"] button', "Measure now")
    browser.wait_text("measured at", 240)
    browser.wait_idle(60)
    browser.assert_no_exception()
    browser.screenshot(out / "4_latency.png")

    # 5. Search results: open the parallel coordinates tab
    goto(browser, "Search results")
    browser.wait_text("Architecture search")
    browser.wait_idle()
    browser.wait_text("All trials")
    browser.wait_for(".js-plotly-plot")
    browser.assert_no_exception()
    browser.screenshot(out / "5_search.png")

    # 6. Prompt to image: an empty prompt gets a message, an example prompt a picture
    goto(browser, "Prompt to image")
    browser.wait_text("Prompt to image")
    browser.wait_idle(120)
    submit = browser.find_all('[data-testid="stFormSubmitButton"] button')
    if submit:  # the text-to-image model is available
        browser.click(submit[0])
        browser.wait_text("Please type a prompt", 30)
        browser.click_text('[data-testid="stButtonGroup"] button', "red truck")
        browser.wait_idle()
        if not UPDATE:  # the fixture model is untrained: a few steps are enough
            steps = browser.find_all('[data-testid="stNumberInput"] input')[1]
            browser.send_keys(steps, "\ue009a\ue000" + "5")  # Ctrl+A, then type
        browser.click(browser.find_all('[data-testid="stFormSubmitButton"] button')[0])
        browser.wait_text("True size", 600)
        browser.wait_idle(60)
    browser.assert_no_exception()
    browser.screenshot(out / "6_prompt.png")

    for name in ("1_overview", "2_confusion", "3_try_it", "4_latency", "5_search", "6_prompt"):
        assert (out / f"{name}.png").stat().st_size > 10_000, f"{name}.png looks empty"
