"""The dashboard in real headless Chromium against a real server: it renders, connects to the event
stream, moves progress bars and re-renders panels live; the screenshot goes to tests/artifacts/."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from cdp import Browser
from server_fixtures import REPO, ServerProcess
from test_server_api import register

ARTIFACTS = REPO / "tests" / "artifacts"


@pytest.fixture
def browser() -> Iterator[Browser]:
    if shutil.which("chromium") is None:
        pytest.skip("missing chromium (run scripts/install-deps)")
    b = Browser()
    try:
        yield b
    finally:
        b.close()


def test_dashboard_renders_and_updates_live(server: ServerProcess, browser: Browser, db_url: str) -> None:
    admin, agent = server.client(), server.anonymous()
    for port in range(1, 5):
        register(server, f"52:54:00:00:09:0{port}", port)
    dep = admin.set_target("node-1", "debian13-2026.11")["deployment"]
    script = server.http("/boot/ipxe?mac=52:54:00:00:09:01")[2].decode()
    token = script.split("cmt.token=")[1].split()[0]
    agent.report(dep["id"], token, "live")
    agent.report(dep["id"], token, "transfer", progress_bytes=11)

    browser.navigate(server.url + "/")
    assert browser.evaluate("document.title") == "cmt-slurm: 4 nodes"
    rows = browser.evaluate("[...document.querySelectorAll('table.nodes tbody tr')].map(r => r.id)")
    assert rows == ["node-node-1", "node-node-2", "node-node-3", "node-node-4"]
    bar = f"document.querySelector('[data-deployment=\"{dep['id']}\"]')"
    assert browser.evaluate(f"{bar}.querySelector('.pct').textContent") == "25%"
    images = browser.evaluate("document.querySelectorAll('table.images tbody tr').length")
    assert images == len(server.provisioner.catalogue)
    browser.wait_for("document.getElementById('live').className === 'live on'")

    # A progress report moves the bar in place (SSE "progress"), without reloading the panels.
    browser.evaluate("document.getElementById('panels').dataset.marker = 'same'")
    agent.report(dep["id"], token, "transfer", progress_bytes=33)
    browser.wait_for(f"{bar}.querySelector('.pct').textContent === '75%'")
    assert browser.evaluate(f"{bar}.querySelector('progress').value") == 33
    # A state change (SSE "event") re-renders the panels from the server.
    register(server, "52:54:00:00:09:05", 5)
    browser.wait_for("document.getElementById('node-node-5') !== null")
    assert "discovered" in browser.evaluate("document.getElementById('node-node-5').textContent")
    assert browser.wait_for("document.querySelector('ol.events li b').textContent") in ("node", "registered")

    backend = "pg" if db_url.startswith("postgresql") else "sqlite"
    shot = ARTIFACTS / f"dashboard-{backend}.png"
    browser.screenshot(shot)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
