"""Real-browser test of the dashboard: `streamlit run` on 127.0.0.1, driven by headless Chromium
through selenium (Debian's chromium and chromium-driver; nothing is downloaded).

Clicks through every page on the tiny fixture models (tests/dashboard_fixtures.py), does one
interaction on each, and saves a screenshot per page into a temporary folder. The same walk
regenerates docs/screenshots/ on the committed models: `python -m dashboard.screenshots`.

Skipped (with the reason) only when /usr/bin/chromium or /usr/bin/chromedriver is absent.
"""

from __future__ import annotations

import os

import pytest
from dashboard_fixtures import shared_artifacts

from dashboard import screenshots

pytestmark = [
    pytest.mark.skipif(not screenshots.browser_available(),
                       reason="headless browser test needs Debian's chromium and chromium-driver "
                              "(apt-get install -y chromium chromium-driver)"),
    pytest.mark.filterwarnings(
        "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    models, tuning = shared_artifacts(tmp_path_factory)
    env = dict(os.environ, SAVED_MODELS_DIR=str(models), TUNING_DIR=str(tuning))
    log = tmp_path_factory.mktemp("streamlit") / "server.log"
    with screenshots.dashboard_server(env, log) as url:
        yield url
    server_log = log.read_text(errors="replace")
    assert "Traceback" not in server_log, server_log[-3000:]


def test_click_through_every_page(server, tmp_path):
    with screenshots.chromium() as page:
        # the fixture text-to-image model is untrained: a few steps are enough
        shots = screenshots.walk(page, server, tmp_path, generation_steps=5)
        assert "seed 3" in page.text(), "the prompt page shows no 2x2 grid of seeds"
    for shot in shots:
        assert shot.stat().st_size > 10_000, f"{shot.name} looks empty"


def other_address() -> str | None:
    """An address of this machine that is not loopback, if it has one."""
    import socket

    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing interface
            address = s.getsockname()[0]
    except OSError:
        return None
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def test_server_listens_on_localhost_only(server):
    """The server started without --server.address (as a user would) answers on 127.0.0.1 only."""
    import socket
    from urllib.parse import urlparse

    address = other_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address to try")
    port = urlparse(server).port
    with pytest.raises(OSError), socket.create_connection((address, port), timeout=3):
        pass
