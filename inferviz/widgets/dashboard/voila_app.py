"""The dashboard's web server: Voila with four policies of inferviz's own.

``python -m inferviz.widgets.dashboard.voila_app NOTEBOOK [voila options]`` (what ``inferviz demo`` and
``make demo`` run) is Voila with:

- **Host check** (DNS rebinding). Every request, static files and kernel websockets included, is
  answered only when its ``Host`` header names this server: ``localhost``, an IP literal, or a
  name given with ``--InfervizVoila.allowed_hosts`` (``inferviz demo --allow-host NAME``). A
  page loaded as ``http://evil.example:8866/`` (a name rebound to 127.0.0.1) gets 403, so it
  can neither start a kernel nor drive the widgets. An IP literal cannot be rebound, so it
  passes. ``allowed_hosts=["*"]`` turns the check off (behind a proxy that checks hosts itself).
- **Session cap.** Each page load starts a kernel with its own copy of the model. When
  ``max_kernels`` kernels are running, a new page gets a "dashboard full" page (HTTP 503) instead
  of another kernel.
- **Closed pages end their kernels.** A page that is closed or reloaded asks Voila to shut its
  kernel down, with the ``_xsrf`` cookie that :class:`DashboardHandler` sets (stock Voila never
  sets it, so that request was refused). A page at the cap waits up to ``FULL_GRACE_S`` for
  such a shutdown, so a reload is never refused because of its own old page.
- **Idle culling.** Kernels with no open page are shut down after ``cull_idle_timeout``
  seconds (jupyter-server's culler, ``--MappingKernelManager.*``, set by ``voila_command``):
  a crashed browser's or a lost connection's kernels too.

Stock Voila answers any ``Host`` (it sets ``allow_remote_access=True``) and has no cap.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import sys
import time
from pathlib import Path

from tornado import web
from tornado.httputil import split_host_and_port
from tornado.log import app_log
from traitlets import Int, List, Unicode
from voila.app import Voila
from voila.tornado.handler import TornadoVoilaHandler

from ...html_text import esc

LOCAL_NAMES = ("localhost",)
# inferviz's Voila template ("inferviz": lab without CDN stylesheets) lives in this data
# folder; Voila finds templates on the Jupyter data path.
JUPYTER_SHARE = Path(__file__).resolve().parent / "jupyter_share"
TEMPLATE = "inferviz"
FULL_GRACE_S = 5.0  # a page at the session cap waits this long for a closing page's kernel


def add_template_path() -> None:
    """Put :data:`JUPYTER_SHARE` first on ``JUPYTER_PATH`` (for this process and the ones it
    starts), so ``--template=inferviz`` resolves."""
    paths = [p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p]
    if str(JUPYTER_SHARE) not in paths:
        os.environ["JUPYTER_PATH"] = os.pathsep.join([str(JUPYTER_SHARE), *paths])


def host_allowed(host_header: str, allowed: list[str] | tuple[str, ...]) -> bool:
    """Whether a request's ``Host`` header (``name[:port]``) may be answered: an IP literal
    (it cannot be rebound), ``localhost`` (and its subdomains are not), or a name in
    ``allowed`` (case-insensitive); ``"*"`` in ``allowed`` allows every host."""
    if "*" in allowed:
        return True
    host, _port = split_host_and_port((host_header or "").strip().lower())
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host:
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host.rstrip(".") in {*LOCAL_NAMES, *(name.lower() for name in allowed)}
    return True


class HostCheck:
    """Mixed into every handler the app serves: refuse a request whose ``Host`` is not this
    server's before the handler does anything (before the kernel handlers' own ``prepare``)."""

    def prepare(self):  # noqa: D102 -- tornado's hook
        allowed = self.settings.get("inferviz_allowed_hosts", ())
        if not host_allowed(self.request.host, allowed):
            app_log.warning("inferviz dashboard: refused a request for Host %r (not one of "
                             "localhost, an IP address, %s)", self.request.host, list(allowed))
            raise web.HTTPError(403, "Host not allowed")
        return super().prepare()

    def write_error(self, status_code: int, **kwargs) -> None:  # noqa: D102
        if status_code == 403 and not host_allowed(
                self.request.host, self.settings.get("inferviz_allowed_hosts", ())):
            _name, port = split_host_and_port(self.request.host or "")
            local = f"http://localhost:{port}/" if port else "http://localhost/"
            self.finish(notice_page(
                "Host not allowed",
                f"This inferviz dashboard does not answer requests for the host name "
                f"<code>{esc(self.request.host)}</code>, so that no other web site can reach it "
                f"through a rebound DNS name. Open it as <a href='{esc(local)}'>{esc(local)}</a>, "
                f"or start it with <code>--allow-host NAME</code>."))
            return
        super().write_error(status_code, **kwargs)


def notice_page(title: str, body_html: str) -> str:
    """A small page of the dashboard's own (host refused, dashboard full); ``body_html`` is
    markup built by the caller with escaped values."""
    return ("<!doctype html><html><head><meta charset='utf-8'><title>inferviz: "
            f"{esc(title.lower())}</title></head><body style='font-family:system-ui,sans-serif;"
            "max-width:40em;margin:4em auto;color:#1f2937;line-height:1.5'>"
            f"<h1 style='font-size:1.4em'>{esc(title)}</h1><p>{body_html}</p></body></html>")


def full_page(running: int, limit: int, idle_timeout: int) -> str:
    """The page shown when the dashboard has as many sessions as it may hold."""
    minutes = max(1, round(idle_timeout / 60)) if idle_timeout else None
    freed = (f" A session whose page was closed ends after {minutes} minute(s) of inactivity."
             if minutes else "")
    return notice_page(
        "The dashboard is full",
        f"{running} session(s) are open; this dashboard holds at most {limit}, since each "
        f"holds its own copy of the model in memory.{esc(freed)}</p><p>Close another tab of "
        "this dashboard, or try again in a few minutes.")


class DashboardHandler(TornadoVoilaHandler):
    """The notebook page: refuse with ``full_page`` once ``max_kernels`` kernels run, and set
    the ``_xsrf`` cookie. Voila's page posts it back when it closes (``beforeunload``: a
    beacon to ``/voila/api/shutdown/<kernel>`` with the cookie's value as ``_xsrf``), but its
    page handler never sets it, so without this every closed or reloaded page was refused
    (403 "'_xsrf' argument missing from POST", voila-dashboards/voila#1458) and its kernel, a
    copy of the model, lived on until the idle culler: a few reloads filled the dashboard."""

    async def get(self, path=None):  # noqa: D102
        self.xsrf_token  # noqa: B018 -- tornado sets the _xsrf cookie on first access
        limit = int(self.settings.get("inferviz_max_kernels", 0))
        running = len(self.kernel_manager.list_kernel_ids())
        # A reload sends the old page's shutdown and the new page's request together: give
        # that shutdown a moment to land before calling the dashboard full.
        deadline = time.monotonic() + FULL_GRACE_S
        while limit and running >= limit and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            running = len(self.kernel_manager.list_kernel_ids())
        if limit and running >= limit:
            self.set_status(503)
            self.set_header("Retry-After", "60")
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.finish(full_page(running, limit,
                                  int(self.settings.get("inferviz_idle_timeout", 0))))
            return
        await super().get(path)


def _guarded(handler: type) -> type:
    if handler is TornadoVoilaHandler:
        handler = DashboardHandler
    return type(f"HostChecked{handler.__name__}", (HostCheck, handler), {})


class InfervizVoila(Voila):
    """Voila with the host check, the session cap and (through ``voila_command``) culling."""

    name = "inferviz-voila"
    allowed_hosts = List(Unicode(), default_value=[], config=True,
                         help="Host names (besides localhost and IP literals) this dashboard "
                              "answers; '*' answers every host.")
    max_kernels = Int(4, config=True,
                      help="Most kernels (dashboard sessions) at once; 0 for no limit.")
    idle_timeout = Int(600, config=True,
                       help="Seconds an unconnected idle kernel lives (shown on the full "
                            "page; the culler itself is MappingKernelManager.cull_idle_timeout).")

    def init_settings(self) -> dict:
        settings = super().init_settings()
        if self.max_kernels < 0:
            raise ValueError(f"max_kernels must be >= 0, got {self.max_kernels}")
        settings.update(inferviz_allowed_hosts=tuple(self.allowed_hosts),
                        inferviz_max_kernels=self.max_kernels,
                        inferviz_idle_timeout=self.idle_timeout)
        return settings

    def init_handlers(self) -> list:
        handlers = []
        for rule in super().init_handlers():
            pattern, handler, *rest = rule
            handlers.append((pattern, _guarded(handler), *rest))
        return handlers


def main(argv: list[str] | None = None) -> None:
    add_template_path()
    InfervizVoila.launch_instance(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
