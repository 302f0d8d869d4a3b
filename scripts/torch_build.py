"""Install torch from an explicit wheel index, and check which build is installed.

    python scripts/torch_build.py install --index URL torch==2.13.0   # make: .venv/.torch
    python scripts/torch_build.py check --index URL                   # make setup, at the end
    python scripts/torch_build.py check --expect cpu                  # .ci/run

``pip install torch`` on an ordinary Linux machine resolves to the CUDA build (~2.7 GB and some
20 ``nvidia-*`` packages). ``install`` asks the index named by ``--index`` (the Makefile's
``TORCH_INDEX``, by default PyTorch's CPU index) with ``--index-url``, which replaces whatever
default index pip is configured with, so the build does not depend on the machine. When that
index cannot be reached (an offline machine with local wheels), it says so and installs from
pip's configured sources; ``check`` then refuses a build that is not the one the index serves.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import subprocess
import sys
import urllib.error
import urllib.request
from urllib.parse import urlsplit

CPU_INDEX = "https://download.pytorch.org/whl/cpu"
PROBE_TIMEOUT_S = 10
PREFIX = "inferviz setup:"


def build_kind(index_url: str) -> str:
    """The build an index serves, from its last path segment: ``cpu`` (``.../whl/cpu``),
    ``cuda`` (``.../whl/cu128``), ``rocm`` (``.../whl/rocm6.2``), or ``any`` (another index,
    e.g. PyPI, whose build depends on the platform)."""
    segment = urlsplit(index_url).path.rstrip("/").rsplit("/", 1)[-1].lower()
    if segment == "cpu":
        return "cpu"
    if segment.startswith("cu") and segment[2:].isdigit():
        return "cuda"
    if segment.startswith("rocm"):
        return "rocm"
    return "any"


def index_reachable(index_url: str, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """``None`` when ``index_url``'s torch page answers, else why not (one line)."""
    page = index_url.rstrip("/") + "/torch/"
    try:
        with urllib.request.urlopen(page, timeout=timeout) as response:  # noqa: S310
            response.read(1)
    except (urllib.error.URLError, OSError, ValueError) as err:
        return str(getattr(err, "reason", err))
    return None


def install_command(python: str, spec: str, index_url: str, reachable: bool) -> list[str]:
    """The pip command line: ``--index-url INDEX`` when the index answers (it replaces any
    configured default index; local ``find-links`` still apply), else pip's own sources."""
    command = [python, "-m", "pip", "install", "-q", spec]
    return command + ["--index-url", index_url] if reachable else command


def problems(expect: str, cuda_version: str | None, hip_version: str | None,
             distributions: list[str]) -> list[str]:
    """What is wrong with the installed build for ``expect`` (``cpu``, ``cuda``, ``rocm`` or
    ``any``); an empty list when it is right."""
    nvidia = sorted(name for name in distributions if name.lower().startswith("nvidia-"))
    found = []
    if expect == "cpu":
        if cuda_version is not None:
            found.append(f"torch is a CUDA build (CUDA {cuda_version})")
        if hip_version is not None:
            found.append(f"torch is a ROCm build (HIP {hip_version})")
        if nvidia:
            found.append(f"{len(nvidia)} nvidia-* packages are installed "
                         f"({', '.join(nvidia[:3])}{', ...' if len(nvidia) > 3 else ''})")
    elif expect == "cuda" and cuda_version is None:
        found.append("torch is not a CUDA build (torch.version.cuda is None)")
    elif expect == "rocm" and hip_version is None:
        found.append("torch is not a ROCm build (torch.version.hip is None)")
    return found


def installed_build() -> tuple[str, str | None, str | None, list[str]]:
    """``(torch version, CUDA version, HIP version, installed distribution names)``."""
    import warnings

    warnings.filterwarnings("ignore", message="Failed to initialize NumPy")  # before numpy is in
    import torch

    names = sorted({(d.metadata["Name"] or "") for d in importlib.metadata.distributions()})
    return (torch.__version__, torch.version.cuda, getattr(torch.version, "hip", None),
            [n for n in names if n])


def check(expect: str, index_url: str | None = None) -> int:
    version, cuda, hip, names = installed_build()
    found = problems(expect, cuda, hip, names)
    build = f"CUDA {cuda}" if cuda else f"ROCm {hip}" if hip else "CPU"
    if not found:
        print(f"{PREFIX} torch {version} ({build} build) in {sys.prefix}")
        return 0
    why = f"TORCH_INDEX is {index_url}" if index_url else f"a {expect} build was expected"
    index = index_url or (CPU_INDEX if expect in ("cpu", "any") else "<the index of that build>")
    print(f"{PREFIX} error: {'; '.join(found)}, but {why}.\n"
          f"  A later install replaced torch, or the index was unreachable and another one "
          f"served this build.\n"
          f"  Fix: make clean && make setup TORCH_INDEX={index} (with that index reachable); "
          f"for a CUDA build: TORCH_INDEX=https://download.pytorch.org/whl/cu128",
          file=sys.stderr)
    return 1


def install(spec: str, index_url: str) -> int:
    reason = index_reachable(index_url)
    if reason is not None:
        print(f"{PREFIX} the torch index {index_url} cannot be reached ({reason}); installing "
              f"{spec} from pip's configured sources (pip config list) instead, then checking "
              f"its build", file=sys.stderr)
    else:
        print(f"{PREFIX} installing {spec} from {index_url}")
    done = subprocess.run(install_command(sys.executable, spec, index_url, reason is None))
    if done.returncode != 0:
        return done.returncode
    return check(build_kind(index_url), index_url)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    inst = sub.add_parser("install", help="install torch from an index, then check its build")
    inst.add_argument("spec", help="e.g. torch==2.13.0")
    inst.add_argument("--index", default=CPU_INDEX, help=f"wheel index (default {CPU_INDEX})")
    chk = sub.add_parser("check", help="check the installed torch build")
    chk.add_argument("--index", default=None, help="the index torch was installed from")
    chk.add_argument("--expect", choices=("cpu", "cuda", "rocm", "any"), default=None,
                     help="the build to expect (default: the one --index serves)")
    args = parser.parse_args(argv)
    if args.command == "install":
        return install(args.spec, args.index)
    expect = args.expect or (build_kind(args.index) if args.index else "cpu")
    return check(expect, args.index)


if __name__ == "__main__":
    sys.exit(main())
