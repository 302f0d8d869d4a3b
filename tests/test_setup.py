"""Set-up: make installs torch from an explicit wheel index (PyTorch's CPU index unless
TORCH_INDEX says otherwise) and refuses a build that index does not serve; the committed
notebooks carry no outputs."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def _torch_build():
    spec = importlib.util.spec_from_file_location("torch_build", REPO / "scripts" / "torch_build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


torch_build = _torch_build()


# ------------------------------------------------------------------ the Makefile
def _make_dry_run(*args: str) -> str:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    done = subprocess.run(["make", "-n", "-B", *args], cwd=REPO, capture_output=True, text=True,
                          check=True)
    return done.stdout


def test_make_installs_torch_from_the_cpu_index_by_default():
    commands = _make_dry_run(".venv/.torch")
    assert f"scripts/torch_build.py install --index '{CPU_INDEX}' 'torch==2.13.0'" in commands
    assert "pip install -q torch" not in commands  # never from the default index alone


def test_torch_index_chooses_another_build():
    cuda = "https://download.pytorch.org/whl/cu128"
    commands = _make_dry_run(".venv/.torch", f"TORCH_INDEX={cuda}")
    assert f"install --index '{cuda}'" in commands


def test_setup_checks_the_torch_build_after_the_other_installs():
    lines = _make_dry_run("setup").splitlines()
    check = f"scripts/torch_build.py check --index '{CPU_INDEX}'"
    last_pip = max(i for i, line in enumerate(lines) if "-m pip install" in line)
    assert any(check in line for line in lines[last_pip + 1:])


def test_ci_checks_that_the_fresh_clone_has_the_cpu_build():
    ci = (REPO / ".ci" / "run").read_text()
    assert "scripts/torch_build.py check --expect cpu" in ci
    assert ci.index("make demo-smoke") < ci.index("torch_build.py check")


# ------------------------------------------------------------------ scripts/torch_build.py
@pytest.mark.parametrize("index, kind", [
    (CPU_INDEX, "cpu"),
    (CPU_INDEX + "/", "cpu"),
    ("https://download.pytorch.org/whl/cu128", "cuda"),
    ("https://download.pytorch.org/whl/rocm6.2", "rocm"),
    ("https://pypi.org/simple", "any"),
    ("http://mirror.example/whl/cpu", "cpu"),
])
def test_the_build_an_index_serves_comes_from_its_last_path_segment(index, kind):
    assert torch_build.build_kind(index) == kind


def test_a_reachable_index_replaces_pips_default_index():
    command = torch_build.install_command("py", "torch==2.13.0", CPU_INDEX, reachable=True)
    assert command == ["py", "-m", "pip", "install", "-q", "torch==2.13.0",
                       "--index-url", CPU_INDEX]


def test_an_unreachable_index_falls_back_to_pips_configured_sources():
    command = torch_build.install_command("py", "torch==2.13.0", CPU_INDEX, reachable=False)
    assert "--index-url" not in command and CPU_INDEX not in command


def test_an_unreachable_index_is_reported_with_the_reason():
    reason = torch_build.index_reachable("http://127.0.0.1:9/whl/cpu", timeout=2)
    assert reason  # nothing listens on the discard port


@pytest.mark.parametrize("expect, cuda, hip, names, found", [
    ("cpu", None, None, ["torch", "numpy"], []),
    ("cpu", "12.8", None, ["torch"], ["torch is a CUDA build (CUDA 12.8)"]),
    ("cpu", None, None, ["torch", "nvidia-cublas-cu12", "nvidia-nccl-cu12"],
     ["2 nvidia-* packages are installed (nvidia-cublas-cu12, nvidia-nccl-cu12)"]),
    ("cpu", None, "6.2", ["torch"], ["torch is a ROCm build (HIP 6.2)"]),
    ("cuda", "12.8", None, ["torch", "nvidia-cublas-cu12"], []),
    ("cuda", None, None, ["torch"], ["torch is not a CUDA build (torch.version.cuda is None)"]),
    ("any", "12.8", None, ["nvidia-cublas-cu12"], []),
])
def test_the_build_check_names_what_is_wrong(expect, cuda, hip, names, found):
    assert torch_build.problems(expect, cuda, hip, names) == found


def test_a_wrong_build_fails_the_check_with_the_fix(monkeypatch, capsys):
    monkeypatch.setattr(torch_build, "installed_build",
                        lambda: ("2.13.0", "12.8", None, ["torch", "nvidia-cublas-cu12"]))
    assert torch_build.check("cpu", CPU_INDEX) == 1
    err = capsys.readouterr().err
    assert "torch is a CUDA build (CUDA 12.8)" in err and f"TORCH_INDEX is {CPU_INDEX}" in err
    assert "make clean && make setup" in err


def test_this_environment_has_the_cpu_build():
    """What .ci/run checks on a fresh clone, here on the test environment itself."""
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "torch_build.py"), "check",
                           "--expect", "cpu"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "(CPU build)" in done.stdout


# ------------------------------------------------------------------ notebooks
def _committed_notebooks() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "notebooks/*.ipynb"], cwd=REPO,
                            capture_output=True, text=True)
    if listed.returncode != 0 or not listed.stdout.strip():
        return sorted((REPO / "notebooks").glob("*.ipynb"))
    return [REPO / line for line in listed.stdout.split()]


@pytest.mark.parametrize("path", _committed_notebooks(), ids=lambda p: p.name)
def test_committed_notebooks_carry_no_outputs(path):
    """A notebook run in Lab saves its outputs into the file: commit it cleared
    (make clear-notebooks)."""
    nb = json.loads(path.read_text())
    dirty = [i for i, cell in enumerate(nb["cells"]) if cell["cell_type"] == "code"
             and (cell.get("outputs") or cell.get("execution_count") is not None)]
    assert not dirty, f"{path.name}: code cells {dirty} have outputs or execution counts"
    assert "widgets" not in nb.get("metadata", {}), f"{path.name}: saved widget state"


def test_clear_notebooks_removes_outputs_counts_and_widget_state(tmp_path):
    dirty = {"cells": [{"cell_type": "code", "source": "1 + 1", "metadata": {"execution": {}},
                        "execution_count": 3, "outputs": [{"output_type": "execute_result"}]},
                       {"cell_type": "markdown", "source": "# x", "metadata": {}}],
             "metadata": {"widgets": {"state": {}}, "kernelspec": {"name": "python3"}},
             "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "run.ipynb"
    path.write_text(json.dumps(dirty))
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "clear_notebooks.py"),
                           str(path)], capture_output=True, text=True, check=True)
    assert f"cleared {path}" in done.stdout
    nb = json.loads(path.read_text())
    assert nb["cells"][0]["outputs"] == [] and nb["cells"][0]["execution_count"] is None
    assert nb["cells"][0]["metadata"] == {} and nb["cells"][1]["source"] == "# x"
    assert nb["metadata"] == {"kernelspec": {"name": "python3"}}
