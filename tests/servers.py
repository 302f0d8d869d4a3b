"""Server processes for the tests (Voila, JupyterLab, llama-server): free ports, waiting for a
server to listen, the environment its kernels need, and stopping it with its process group."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SERVER_START_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early ({process.returncode}):\n{log.read_text()}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.3)
    raise TimeoutError(f"server not listening on {port} after {SERVER_START_TIMEOUT_S} s")


def stop_process_group(process: subprocess.Popen) -> None:
    """SIGTERM the server's process group (server and kernels), then SIGKILL stragglers."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=10)


def server_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONUNBUFFERED"] = "1"
    # Export buttons clicked by a test write here, not into ~/inferviz-exports.
    env.setdefault("INFERVIZ_EXPORT_DIR", os.path.join(tempfile.gettempdir(),
                                                       "inferviz-test-exports"))
    # Servers and their kernels import this checkout's inferviz (not another installed copy).
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    return env


@contextlib.contextmanager
def serve_voila(notebook: Path):
    """Voila on ``notebook`` (run in its folder, logging to ``voila.log`` there) on a free port;
    yields the page's URL and stops the server with its kernels afterwards."""
    from inferviz.widgets.dashboard.launcher import voila_command

    workdir = notebook.parent
    port = free_port()
    log = workdir / "voila.log"
    with open(log, "w") as out:
        process = subprocess.Popen(voila_command(Path(notebook), "127.0.0.1", port), cwd=workdir,
                                   stdout=out, stderr=subprocess.STDOUT, env=server_env(),
                                   start_new_session=True)
    try:
        wait_for_port(port, process, log)
        yield f"http://127.0.0.1:{port}/"
    finally:
        stop_process_group(process)
        print(f"\n--- voila log (tail) ---\n{log.read_text()[-2000:]}")


def one_cell_notebook(folder: Path, code: str = "print('kernel up')") -> Path:
    """A notebook of one code cell ``code`` in ``folder`` (for the dashboard's server tests)."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells.append(nbformat.v4.new_code_cell(code))
    path = folder / "one_cell.ipynb"
    nbformat.write(nb, str(path))
    return path
