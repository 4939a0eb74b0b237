"""Clicks through every dashboard page in headless Chromium and saves one screenshot per page.

    python -m dashboard.screenshots                       # starts the dashboard on the committed
                                                          # models, writes docs/screenshots/
    python -m dashboard.screenshots --url http://127.0.0.1:8501 --out /tmp/shots   # a running one

Drives Debian's /usr/bin/chromium through /usr/bin/chromedriver with selenium (nothing is
downloaded; `apt-get install -y chromium chromium-driver`). tests/test_dashboard_browser.py runs the
same walk on tiny fixture models.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
BROWSER_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-dev-shm-usage", "--window-size=1440,1900", "--hide-scrollbars",
                 "--force-device-scale-factor=1")
PAGES = ("1_overview", "2_confusion", "3_try_it", "4_latency", "5_search", "6_prompt")


def browser_available() -> bool:
    return CHROMIUM.is_file() and CHROMEDRIVER.is_file()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


@contextmanager
def dashboard_server(env: dict | None = None, log: Path | None = None):
    """`streamlit run dashboard/app.py` on a free port of 127.0.0.1; yields its URL."""
    port = free_port()
    log = log or Path(tempfile.mkdtemp(prefix="dashboard-")) / "server.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "dashboard/app.py", "--server.headless", "true",
             "--server.port", str(port), "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none"],
            cwd=REPO, env=env or dict(os.environ), stdout=fh, stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{port}/_stcore/health", 90)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextmanager
def chromium():
    """A headless selenium Chrome driver on Debian's chromium and chromedriver."""
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in BROWSER_FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=str(CHROMEDRIVER)),
                              options=options)
    driver.set_page_load_timeout(120)
    try:
        yield Page(driver)
    finally:
        driver.quit()


class Page:
    """A few waits and clicks on a Streamlit page, on top of a selenium driver."""

    def __init__(self, driver):
        from selenium.webdriver.common.by import By

        self.driver, self.by = driver, By

    def find_all(self, css: str):
        return self.driver.find_elements(self.by.CSS_SELECTOR, css)

    def text(self) -> str:
        return self.driver.execute_script("return document.body.innerText;") or ""

    def wait_text(self, needle: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.text():
                return
            time.sleep(0.3)
        raise AssertionError(f"'{needle}' did not appear within {timeout:.0f} s; page says:\n" + self.text()[:2000])

    def wait_for(self, css: str, timeout: float = 60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.find_all(css)
            if found:
                return found
            time.sleep(0.3)
        raise AssertionError(f"no {css} within {timeout:.0f} s")

    def wait_idle(self, timeout: float = 60) -> None:
        """Until Streamlit has finished the script run (no running indicator) and nothing moves."""
        deadline = time.monotonic() + timeout
        quiet = 0
        while time.monotonic() < deadline:
            running = self.driver.execute_script(
                "return !!document.querySelector('[data-testid=\"stStatusWidget\"]') || "
                "!!document.querySelector('[data-testid=\"stSkeleton\"]') || "
                "!!document.querySelector('[data-testid=\"stSpinner\"]');")
            quiet = 0 if running else quiet + 1
            if quiet >= 4:
                return
            time.sleep(0.25)
        raise AssertionError(f"the app stayed busy for {timeout:.0f} s")

    def assert_no_exception(self) -> None:
        assert not self.find_all('[data-testid="stException"]'), \
            "the page shows a Python exception:\n" + self.text()[:3000]

    def click_text(self, css: str, needle: str) -> None:
        for el in self.find_all(css):
            if needle in (el.text or ""):
                el.click()
                return
        raise AssertionError(f"no {css} with text '{needle}'")

    def click_at(self, x: float, y: float) -> None:
        """A real mouse click at viewport coordinates (for charts)."""
        from selenium.webdriver.common.actions.action_builder import ActionBuilder

        actions = ActionBuilder(self.driver)
        actions.pointer_action.move_to_location(int(x), int(y))
        actions.pointer_action.click()
        actions.perform()

    def screenshot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.driver.get_screenshot_as_png())

    def goto(self, label: str) -> None:
        """Clicks the sidebar link of a page, like a user."""
        self.click_text('[data-testid="stSidebarNav"] a', label)


def make_upload(path: Path) -> None:
    """A 400x300 picture: a CIFAR-10 test horse enlarged onto a wider canvas when the archive is
    available, else a colour gradient."""
    import numpy as np
    from PIL import Image

    try:
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


def walk(page: Page, url: str, out: Path, generation_steps: int | None = None) -> list[Path]:
    """Every page with one interaction each; a screenshot per page into `out`. `generation_steps`
    overrides the prompt page's step count (a few for an untrained test model)."""
    out = Path(out)

    # 1. Overview (the default page)
    page.driver.get(url)
    page.wait_text("Model overview")
    page.wait_text("Deliverables")
    page.wait_idle()
    page.assert_no_exception()
    page.click_text('[data-testid="stButtonGroup"] button', "TFLite")
    page.wait_idle()
    page.assert_no_exception()
    page.wait_for(".js-plotly-plot")
    page.screenshot(out / "1_overview.png")

    # 2. Confusion matrix explorer: normalised view, then click the cat -> dog cell
    page.goto("Confusion explorer")
    page.wait_text("Confusion matrix explorer")
    page.wait_idle(90)
    page.click_text('[data-testid="stButtonGroup"] button', "Normalised")
    page.wait_idle(60)
    page.assert_no_exception()
    page.wait_for(".js-plotly-plot")
    time.sleep(1.0)  # let Plotly finish laying out
    x, y = page.driver.execute_script("""
        const gd = document.querySelectorAll('.js-plotly-plot')[0];
        const fl = gd._fullLayout, r = gd.getBoundingClientRect();
        return [r.left + fl.xaxis._offset + fl.xaxis.l2p(5), r.top + fl.yaxis._offset + fl.yaxis.l2p(3)];
    """)
    page.click_at(x, y)
    page.wait_text("cat → dog:", 60)
    page.wait_idle(60)
    page.screenshot(out / "2_confusion.png")

    # 3. Try it: upload a picture
    page.goto("Try it")
    page.wait_text("Upload a picture")
    page.wait_idle()
    picture = Path(tempfile.mkdtemp(prefix="upload-")) / "photo.png"
    make_upload(picture)
    page.find_all('[data-testid="stFileUploader"] input[type="file"]')[0].send_keys(str(picture))
    page.wait_text("What the model sees", 120)
    page.wait_idle(120)
    page.assert_no_exception()
    assert "400×300" in page.text(), "the resize note is missing"
    page.screenshot(out / "3_try_it.png")

    # 4. Live latency: measure (in a child process)
    page.goto("Live latency")
    page.wait_text("Measure now")
    page.wait_idle()
    page.click_text('[data-testid="stButton"] button', "Measure now")
    page.wait_text("measured at", 240)
    page.wait_idle(60)
    page.assert_no_exception()
    page.screenshot(out / "4_latency.png")

    # 5. Search results
    page.goto("Search results")
    page.wait_text("Architecture search")
    page.wait_idle()
    page.wait_text("All trials")
    page.wait_for(".js-plotly-plot")
    page.assert_no_exception()
    page.screenshot(out / "5_search.png")

    # 6. Prompt to image: an empty prompt gets a message, the first example prompt four pictures
    page.goto("Prompt to image")
    page.wait_text("Prompt to image")
    # loading the model (TensorFlow, then the weights) can take minutes on a busy machine
    deadline = time.monotonic() + 600
    while not page.find_all('[data-testid="stFormSubmitButton"] button'):
        if "could not be loaded" in page.text() or "not available" in page.text():
            raise AssertionError("the prompt page cannot use the text-to-image model:\n" + page.text()[-1500:])
        if time.monotonic() > deadline:
            raise AssertionError("the prompt page did not show its form within 600 s")
        time.sleep(0.5)
    page.wait_idle(120)
    submit = page.wait_for('[data-testid="stFormSubmitButton"] button', 60)
    submit[0].click()
    page.wait_text("Please type a prompt", 30)
    page.find_all('[data-testid="stPills"] button, [data-testid="stButtonGroup"] button')[0].click()
    page.wait_idle()
    if generation_steps is not None:
        steps = page.find_all('[data-testid="stNumberInput"] input')[1]
        steps.send_keys("\ue009a\ue000" + str(generation_steps))  # Ctrl+A, then type
    page.find_all('[data-testid="stFormSubmitButton"] button')[0].click()
    page.wait_text("True size", 900)
    page.wait_idle(60)
    page.assert_no_exception()
    page.screenshot(out / "6_prompt.png")
    return [out / f"{name}.png" for name in PAGES]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", help="a running dashboard (default: start one on the committed models)")
    p.add_argument("--out", default=str(REPO / "docs" / "screenshots"), help="folder for the PNGs")
    args = p.parse_args(argv)
    if not browser_available():
        print(f"error: needs {CHROMIUM} and {CHROMEDRIVER} (apt-get install -y chromium chromium-driver)",
              file=sys.stderr)
        return 2
    with chromium() as page:
        if args.url:
            shots = walk(page, args.url, Path(args.out))
        else:
            with dashboard_server() as url:
                shots = walk(page, url, Path(args.out))
    for shot in shots:
        print(f"wrote {shot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
