"""The Voila dashboard: the explorer on the default model, as a web page without code.

``serve()`` runs ``voila`` on ``notebooks/dashboard.ipynb`` and prints the URL (``inferviz demo``
and ``make demo`` call it). In a repo checkout (``pip install -e .``) that notebook is used; an
installed wheel has no ``notebooks/`` folder, so the same notebook is written from
``DASHBOARD_CELLS`` into a temporary folder. ``tests/test_notebooks.py`` checks that the file
and ``DASHBOARD_CELLS`` agree. ``load_session`` loads the model with a widget progress bar in
place of the library's stderr bars (nothing lands in an output box).
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
import webbrowser
from collections.abc import Sequence
from pathlib import Path

from ... import files
from ...html_text import esc
from ..export.policy import EXPORT_DIR_ENV, PER_SESSION_ENV, export_root
from . import model_warmup, owned_processes

REPO_NOTEBOOK = Path(__file__).resolve().parents[3] / "notebooks" / "dashboard.ipynb"
EXAMPLE_PROMPT = "The capital of France is"

DASHBOARD_CELLS: list[tuple[str, str]] = [
    ("markdown",
     ("# What does the model say next, and why?\n"
     "\n"
     "SmolLM2-135M-Instruct, running on this machine. Click a node to expand it into the model's "
     "most likely next tokens, or pick a decoding strategy and press **Run** to watch it grow "
     "the tree; a **constraint** (a regex, a JSON schema, a set of answers) keeps clicks and "
     "runs to a language and shows what it cut. The tabs below show the selected path's "
     "per-token table, its logit lens, why the model chose its token (attribution) and what a "
     "steered or ablated model would say instead, several strategies compared side by side, "
     "charts and exports.")),
    ("code",
     ("from inferviz.widgets.dashboard import load_session\n"
     "\n"
     "session = load_session(\"default\")  # a progress bar while a first start converts the model\n"
     f"explorer = session.explore({EXAMPLE_PROMPT!r}, expand_root=True, max_new_tokens=12)\n"
     "explorer")),
]


def remote_cells(server: dict) -> list[tuple[str, str]]:
    """``DASHBOARD_CELLS`` with the session made by ``iv.Session.connect(**server)``."""
    args = ", ".join(f"{k}={v!r}" for k, v in server.items() if v is not None)
    code = (f"import inferviz as iv\n\nsession = iv.Session.connect({args})\n"
            f"explorer = session.explore({EXAMPLE_PROMPT!r}, expand_root=True, max_new_tokens=12)\n"
            "explorer")
    # Markdown passes HTML through: the URL is text, escaped like every other.
    return [("markdown", f"# inferviz explorer\n\nThe model served at {esc(server['base_url'])}."),
            ("code", code)]


DEMO_INSTALL = "pip install 'inferviz[demo]'  (or `make setup`)"


class WidgetProgress:
    """``progress(stage, done, total)`` for model loading drawn as an ipywidgets progress bar.
    The bar appears only for a stage with many steps (a cold GGUF conversion) and is hidden
    when loading ends, so a fast cached load shows nothing."""

    def __init__(self) -> None:
        self.box = None
        self.bar = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.bar is None:
            if total <= 1:
                return
            import ipywidgets as w
            from IPython.display import display

            self.bar = w.IntProgress(value=0, min=0, max=total, description="model")
            self.label = w.Label(stage)
            self.box = w.HBox([self.bar, self.label])
            display(self.box)
        self.label.value = f"{stage}: {done}/{total}" if total > 1 else stage
        self.bar.max = max(total, 1)
        self.bar.value = min(done, self.bar.max)

    def hide(self) -> None:
        if self.box is not None:
            self.box.layout.display = "none"  # hidden, not closed: a closed view is an error box


def load_session(name_or_path: str = "default", **kwargs):
    """``Session.from_pretrained`` with a widget progress bar (for notebooks and Voila)."""
    from ...session import Session

    progress = WidgetProgress()
    try:
        return Session.from_pretrained(name_or_path, progress=progress, **kwargs)
    finally:
        progress.hide()


def dashboard_notebook(server: dict | None = None):
    """The dashboard as an ``nbformat`` notebook (python3 kernel); ``server``: keyword
    arguments of ``Session.connect`` to explore a served model instead of the default."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for kind, source in (DASHBOARD_CELLS if server is None else remote_cells(server)):
        make = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
        nb.cells.append(make(source))
    return nb


def write_dashboard(path: str | Path, server: dict | None = None) -> Path:
    import nbformat

    path = Path(path)
    nb = dashboard_notebook(server)
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"dashboard-{i}"  # stable ids: regenerating gives the same file
    files.write_text(path, nbformat.writes(nb))  # atomic
    return path


def notebook_path() -> Path:
    """The repo's ``notebooks/dashboard.ipynb``, or a generated copy when not in a checkout."""
    if REPO_NOTEBOOK.is_file():
        return REPO_NOTEBOOK
    folder = Path(tempfile.mkdtemp(prefix="inferviz-dashboard-"))
    return write_dashboard(folder / "dashboard.ipynb")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


# The dashboard's limits (docs/reliability.md, "Security"): sessions at once (each a kernel
# with its own copy of the model: 0.96 GB RSS measured for the default model on the CPU) and seconds
# an idle kernel whose page was closed lives.
MAX_SESSIONS = 4
IDLE_TIMEOUT = 600
SERVE_TIMEOUT_S = 120  # for Voila to listen (seconds on a busy machine)


def voila_command(notebook: Path, host: str, port: int, allowed_hosts: Sequence[str] = (),
                  max_sessions: int = MAX_SESSIONS,
                  idle_timeout: int = IDLE_TIMEOUT) -> list[str]:
    """The command line of the dashboard server: Voila with inferviz's host check, session
    cap and idle-kernel culling (``inferviz/widgets/dashboard/voila_app.py``)."""
    _check_limits(allowed_hosts, max_sessions, idle_timeout)
    return [sys.executable, "-m", "inferviz.widgets.dashboard.voila_app", str(notebook), f"--port={port}",
            "--no-browser", f"--Voila.ip={host}", "--Voila.port_retries=0", "--theme=light",
            "--template=inferviz",  # lab, without stylesheets from a CDN (voila_app.py)
            "--VoilaConfiguration.show_tracebacks=True",
            # one option per name (traitlets 5 deprecates a list literal on the command line)
            *(f"--InfervizVoila.allowed_hosts={name}" for name in allowed_hosts),
            f"--InfervizVoila.max_kernels={max_sessions}",
            f"--InfervizVoila.idle_timeout={idle_timeout}",
            # jupyter-server's culler: kernels with no open page, idle this long, are shut down.
            f"--MappingKernelManager.cull_idle_timeout={idle_timeout}",
            f"--MappingKernelManager.cull_interval={max(1, min(60, idle_timeout // 2 or 1))}",
            "--MappingKernelManager.cull_connected=False"]


def _check_limits(allowed_hosts: Sequence[str], max_sessions: int, idle_timeout: int) -> None:
    if isinstance(allowed_hosts, str):
        raise TypeError("allowed_hosts must be a list of host names, not a str")
    for name in allowed_hosts:
        if not isinstance(name, str) or not name or any(c in name for c in " /'\"[]"):
            raise ValueError(f"allowed_hosts must hold host names (or '*'), got {name!r}")
    for arg, value in (("max_sessions", max_sessions), ("idle_timeout", idle_timeout)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{arg} must be an int >= 0 (0: no limit), got {value!r}")


def _launch(host: str, port: int, notebook: str | Path | None, allowed_hosts: Sequence[str],
            max_sessions: int, idle_timeout: int, export_dir: str | Path | None,
            env: dict | None) -> tuple[list[str], Path, dict]:
    """Check every argument and build ``(command, cwd, env)`` of the dashboard server."""
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise ValueError(f"port must be an integer in 0..65535, got {port!r}")
    _check_limits(allowed_hosts, max_sessions, idle_timeout)
    for package in ("voila", "ipykernel"):
        if importlib.util.find_spec(package) is None:
            raise ModuleNotFoundError(f"the dashboard needs {package}: {DEMO_INSTALL}",
                                      name=package)
    path = Path(notebook) if notebook is not None else notebook_path()
    if not path.is_file():
        raise FileNotFoundError(f"dashboard notebook {path} does not exist")
    _check_port(host, port)
    port = port or free_port(host)
    env = dict(env or os.environ)
    root = Path(export_dir).expanduser() if export_dir is not None else export_root()
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    env[EXPORT_DIR_ENV] = str(root.resolve())
    env[PER_SESSION_ENV] = "1"  # each kernel (page) exports into a folder of its own
    command = voila_command(path, host, port, allowed_hosts, max_sessions, idle_timeout)
    return command, path.parent, env


def _check_port(host: str, port: int) -> None:
    if port and not port_free(host, port):
        raise OSError(f"port {port} on {host} is in use (another dashboard?): pass another "
                      f"--port, or --port 0 for a free one")


def start(host: str = "127.0.0.1", port: int = 8866, notebook: str | Path | None = None,
          allowed_hosts: Sequence[str] = (), max_sessions: int = MAX_SESSIONS,
          idle_timeout: int = IDLE_TIMEOUT, export_dir: str | Path | None = None,
          **popen_kwargs) -> subprocess.Popen:
    """Start the dashboard server in the background; returns the process (stop it with
    ``owned_processes.stop(process)``, which stops its kernels too). ``port=0`` picks a free
    port (read it back with ``port_of(process)``). ``export_dir``: the folder the dashboard's
    exports go to, one subfolder per session (default ``$INFERVIZ_EXPORT_DIR`` or
    ``~/inferviz-exports``)."""
    command, cwd, env = _launch(host, port, notebook, allowed_hosts, max_sessions, idle_timeout,
                                export_dir, popen_kwargs.pop("env", None))
    return subprocess.Popen(command, cwd=cwd, env=env, **popen_kwargs)


def port_of(process: subprocess.Popen) -> int:
    """The port a server from ``start`` listens on (Voila never moves to another:
    ``--Voila.port_retries=0``)."""
    return _port_in(process.args)


def _port_in(command: Sequence[str]) -> int:
    return int(next(a for a in command if a.startswith("--port=")).split("=", 1)[1])


def port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def url(host: str, port: int) -> str:
    """The address to open: ``localhost`` for a wildcard host, brackets around IPv6."""
    if host in ("0.0.0.0", "::", ""):
        host = "localhost"
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def wait_until_serving(process: subprocess.Popen, host: str, port: int,
                       timeout_s: float = SERVE_TIMEOUT_S) -> bool:
    """Wait until the server accepts connections on ``port``: ``True``; ``False`` when it
    exited first. A ``TimeoutError`` after ``timeout_s``."""
    target = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with socket.create_connection((target, port), timeout=1.0):
                return True
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"the dashboard server did not listen on port {port} within "
                       f"{timeout_s:.0f} s")


def serve(host: str = "127.0.0.1", port: int = 8866, open_browser: bool = False,
          server: dict | None = None, allowed_hosts: Sequence[str] = (),
          max_sessions: int = MAX_SESSIONS, idle_timeout: int = IDLE_TIMEOUT,
          export_dir: str | Path | None = None, notebook: str | Path | None = None) -> int:
    """Serve the dashboard with Voila until Ctrl-C, SIGTERM or SIGHUP, each of which stops Voila
    and every kernel it started (``owned_processes``). Returns Voila's exit code (0 when
    stopped). ``server``: ``Session.connect`` keyword arguments (``inferviz demo --server URL``);
    ``notebook``: serve another notebook with the same policies.

    Before Voila starts, a first run converts the default model's GGUF (progress printed), so
    the first page does not wait for it; the URL is printed once the server accepts
    connections on it."""
    if server is not None:
        folder = Path(tempfile.mkdtemp(prefix="inferviz-dashboard-"))
        notebook = write_dashboard(folder / "dashboard.ipynb", server)
    default_dashboard = server is None and notebook is None
    command, cwd, env = _launch(host, port, notebook, allowed_hosts, max_sessions, idle_timeout,
                                export_dir, None)
    port = _port_in(command)
    process = None
    with owned_processes.stop_signals_interrupt():
        try:
            if default_dashboard:
                model_warmup.prepare("default")
                _check_port(host, port)  # still free after the conversion
            # A group of its own: a terminal's Ctrl-C reaches this process, which stops Voila
            # and its kernels in order, instead of reaching Voila mid-way.
            process = subprocess.Popen(command, cwd=cwd, env=env, start_new_session=True,
                                       preexec_fn=owned_processes.stop_with_parent)
            if not wait_until_serving(process, host, port):
                print(f"inferviz dashboard: the server exited (code {process.returncode}) "
                      f"before serving; see its messages above", file=sys.stderr, flush=True)
                return process.returncode or 1
            address = url(host, port)
            print(f"inferviz dashboard: {address}  (exports: {env[EXPORT_DIR_ENV]}; "
                  f"Ctrl-C stops)", flush=True)
            if open_browser:
                webbrowser.open(address)
            return process.wait()
        except KeyboardInterrupt:
            return 0
        finally:
            if process is not None:
                owned_processes.stop(process)
