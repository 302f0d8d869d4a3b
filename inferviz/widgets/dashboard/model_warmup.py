"""Before ``inferviz demo`` serves the dashboard: convert the model's GGUF once, with progress on
the terminal, so the URL is printed when a page can open in seconds (a cold conversion of the
default model takes about a minute, and the first page would otherwise wait for it).

The conversion runs in a child process (:data:`CHILD_CODE`, ``main(NAME)``): the server itself
never holds a copy of the model, and stopping the server stops the conversion.
"""

from __future__ import annotations

import subprocess
import sys
from typing import TextIO

PREFIX = "inferviz dashboard:"
CHILD_CODE = ("import sys; from inferviz.widgets.dashboard.model_warmup import main; "
              "sys.exit(main(sys.argv[1:]))")


class LineProgress:
    """``progress(stage, done, total)`` as a line per quarter of a long stage, for a log
    (stderr that is not a terminal, where a tqdm bar would print nothing)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.shown: set[tuple[str, int]] = set()

    def __call__(self, stage: str, done: int, total: int) -> None:
        if total <= 1:
            return
        quarter = 4 * done // total
        if (stage, quarter) not in self.shown:
            self.shown.add((stage, quarter))
            print(f"{PREFIX}   {stage}: {done}/{total}", file=self.out, flush=True)


def pending(name: str):
    """The GGUF file that serving ``name`` would convert first, or ``None``."""
    from ...models import pending_gguf_conversion

    return pending_gguf_conversion(name)


def prepare(name: str = "default", out: TextIO | None = None) -> bool:
    """Convert ``name``'s GGUF when no conversion is cached, in a child process, printing
    progress; returns whether it converted. A failed conversion raises ``RuntimeError`` (the
    dashboard would fail the same way on its first page)."""
    out = out if out is not None else sys.stdout
    gguf = pending(name)
    if gguf is None:
        return False
    from ...models import cache_dir

    print(f"{PREFIX} converting the model once ({gguf.name}, about a minute; cached in "
          f"{cache_dir()})", file=out, flush=True)
    # -c, not -m: ``-m`` on a module its package already imported warns (runpy's
    # RuntimeWarning "found in sys.modules") on the user's terminal.
    child = subprocess.Popen([sys.executable, "-c", CHILD_CODE, name])
    try:
        code = child.wait()
    finally:
        if child.poll() is None:  # interrupted: stop the conversion too
            child.terminate()
            child.wait(timeout=30)
    if code != 0:
        raise RuntimeError(f"converting the model {name!r} failed (exit code {code}); "
                           f"see the messages above")
    print(f"{PREFIX} model ready", file=out, flush=True)
    return True


def main(argv: list[str] | None = None) -> int:
    from ...cli import TerminalProgress
    from ...models import load

    args = argv if argv is not None else sys.argv[1:]
    name = args[0] if args else "default"
    bar = TerminalProgress()
    progress = bar if bar.enabled else LineProgress(sys.stdout)
    try:
        load(name, device="cpu", progress=progress)
    except (OSError, ValueError) as err:
        print(f"{PREFIX} error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C reaches the server and this child alike
        return 130
    finally:
        bar.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
