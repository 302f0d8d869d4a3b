"""Browser fixtures: Debian chromium driven by playwright (nothing downloads a browser), and
Voila / JupyterLab servers on free ports, torn down with their kernels."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from e2e_helpers import CHROMIUM, CHROMIUM_ARGS
from servers import free_port, serve_voila, server_env, stop_process_group, wait_for_port

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"


@pytest.fixture(scope="session")
def playwright_driver():
    """The session's one playwright driver: the sync API runs one at a time (a second
    sync_playwright() inside the first's event loop fails), so tests that need a browser of
    their own launch it here."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="session")
def browser(playwright_driver):
    chromium = playwright_driver.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                 args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()


@pytest.fixture()
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors
    yield page
    context.close()


@pytest.fixture(scope="module")
def voila_server(tmp_path_factory):
    pytest.importorskip("voila")
    workdir = tmp_path_factory.mktemp("voila")
    notebook = shutil.copy(NOTEBOOKS / "dashboard.ipynb", workdir / "dashboard.ipynb")
    with serve_voila(Path(notebook)) as url:
        yield url


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory):
    pytest.importorskip("jupyterlab")
    workdir = tmp_path_factory.mktemp("lab")
    for nb in NOTEBOOKS.glob("*.ipynb"):  # a copy: Lab autosaves outputs into what it opens
        shutil.copy(nb, workdir / nb.name)
    settings = workdir / ".settings"
    for plugin, values in {
        # Render every cell (the default windowing leaves off-screen widgets out of the DOM).
        "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
        "@jupyterlab/apputils-extension/notification": {"fetchNews": "false",
                                                        "checkForUpdates": False},
    }.items():
        package, name = plugin.rsplit("/", 1)
        target = settings / package / f"{name}.jupyterlab-settings"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values))
    env = server_env()
    env["JUPYTERLAB_SETTINGS_DIR"] = str(settings)
    env["JUPYTERLAB_WORKSPACES_DIR"] = str(workdir / ".workspaces")
    port = free_port()
    log = workdir / "lab.log"
    command = [sys.executable, "-m", "jupyter", "lab", "--allow-root", "--no-browser",
               f"--ServerApp.port={port}", "--ServerApp.ip=127.0.0.1",
               "--ServerApp.token=", "--ServerApp.password=", "--ServerApp.disable_check_xsrf=True",
               f"--ServerApp.root_dir={workdir}", "--LabApp.expose_app_in_browser=True"]
    with open(log, "w") as out:
        process = subprocess.Popen(command, cwd=workdir, stdout=out, stderr=subprocess.STDOUT,
                                   env=env, start_new_session=True)
    try:
        wait_for_port(port, process, log)
        yield f"http://127.0.0.1:{port}/"
    finally:
        stop_process_group(process)
        print(f"\n--- lab log (tail) ---\n{log.read_text()[-2000:]}")
