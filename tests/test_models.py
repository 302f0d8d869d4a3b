"""Model loading: sources, GGUF safetensors cache, device/dtype, and clear errors."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from inferviz import Session
from inferviz.adapter import adapter_for
from inferviz.models import (
    GGUF_STAGE,
    LOAD_STAGE,
    cache_dir,
    default_gguf_path,
    hub_reachable,
    resolve_device,
    resolve_dtype,
)


def test_cache_dir_respects_xdg_cache_home(monkeypatch, tmp_path):
    monkeypatch.delenv("INFERVIZ_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "inferviz"


def test_auto_device_is_cpu_without_accelerators(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32


def test_bad_dtype_and_device_are_named():
    with pytest.raises(ValueError, match="dtype 'float8'"):
        resolve_dtype("float8", torch.device("cpu"))
    with pytest.raises(ValueError, match="device 'gpu0'"):
        resolve_device("gpu0")


def test_missing_path_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Session.from_pretrained("./no/such/model")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Session.from_pretrained("/tmp/nothing-here.gguf")


def test_hub_id_while_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError, match="could not load model 'someone/not-a-model'") as info:
        Session.from_pretrained("someone/not-a-model")
    assert "'default'" in str(info.value) and "gemma3-270m" in str(info.value)


def test_unknown_name_with_the_hub_unreachable_fails_fast(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    for proxy in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    start = time.perf_counter()
    with pytest.raises(OSError) as info:
        Session.from_pretrained("no-such-model-name")
    elapsed = time.perf_counter() - start
    message = str(info.value)
    assert elapsed < 5.0, f"took {elapsed:.1f} s"
    assert "'no-such-model-name'" in message and "name_or_path" in message
    assert "unreachable" in message and "'default'" in message and "qwen2.5-coder-0.5b" in message


def test_hub_probe_is_bounded_by_its_timeout(monkeypatch):
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{silent.getsockname()[1]}")
        start = time.perf_counter()
        assert hub_reachable(timeout=0.5) is False
        assert time.perf_counter() - start < 2.0


def _default_gguf_head(size: int) -> bytes:
    try:
        path = default_gguf_path()
    except FileNotFoundError:
        pytest.skip("the embedded default model is not installed")
    with path.open("rb") as f:
        return f.read(size)


@pytest.mark.parametrize("name, content", [
    ("empty.gguf", lambda: b""),
    ("garbage.gguf", lambda: b"GGUF" + bytes(range(256)) * 8),
    ("not-gguf.gguf", lambda: b"this is not a model file\n" * 40),
    ("truncated.gguf", lambda: _default_gguf_head(1 << 16)),
])
def test_broken_gguf_file_is_a_value_error_naming_the_file(tmp_path, monkeypatch, name, content):
    monkeypatch.setenv("INFERVIZ_CACHE", str(tmp_path / "cache"))
    path = tmp_path / name
    path.write_bytes(content())
    with pytest.raises(ValueError, match="cannot read GGUF file") as info:
        Session.from_pretrained(str(path))
    assert str(path) in str(info.value)
    assert not (tmp_path / "cache" / "gguf").exists() or not any((tmp_path / "cache" / "gguf")
                                                                    .iterdir())


def test_gguf_with_unsupported_architecture_is_refused(tmp_path):
    from gguf import GGUFWriter

    path = tmp_path / "mamba.gguf"
    writer = GGUFWriter(str(path), "mamba")
    writer.add_tensor("token_embd.weight", np.zeros((4, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ValueError, match="architecture 'mamba' is not supported"):
        Session.from_pretrained(str(path))


def test_folder_with_unsupported_family_is_refused(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "mamba"}')
    with pytest.raises(ValueError, match="'mamba' is not supported"):
        Session.from_pretrained(str(tmp_path))


def test_local_safetensors_folder_loads(tmp_path, tiny_tokenizer):
    from tiny_models import tiny_model

    model = tiny_model("llama", vocab_size=len(tiny_tokenizer))
    model.save_pretrained(tmp_path)
    tiny_tokenizer.save_pretrained(tmp_path)
    s = Session.from_pretrained(str(tmp_path))
    assert s.source == "folder" and s.adapter.family == "llama"
    ids = torch.tensor([tiny_tokenizer("Hello")["input_ids"]])
    torch.testing.assert_close(s.model(ids).logits, model(ids).logits)


def test_adapter_refuses_unknown_families():
    class Fake:
        class config:  # noqa: N801
            model_type = "rwkv"

    with pytest.raises(ValueError, match="'rwkv' is not supported"):
        adapter_for(Fake())


@pytest.mark.model
def test_default_gguf_is_cached_as_safetensors_and_reloads_identically(monkeypatch, tmp_path):
    monkeypatch.setenv("INFERVIZ_CACHE", str(tmp_path))
    calls: list[tuple[str, int, int]] = []
    first = Session.from_pretrained("default", progress=lambda *call: calls.append(call))
    assert first.source == "gguf"
    assert list(tmp_path.glob("gguf/*/model.safetensors"))
    converting = [c for c in calls if c[0] == GGUF_STAGE]
    assert converting[0][1] == 0 and converting[-1][1] == converting[-1][2] > 100
    assert calls[-1] == (LOAD_STAGE, 1, 1)
    second = Session.from_pretrained("default")
    assert second.source == "gguf-cache"
    ids = torch.tensor([first.encode("The capital of France is")])
    with torch.no_grad():
        torch.testing.assert_close(first.model(ids).logits, second.model(ids).logits)
    assert first.tokenizer("héllo 東京")["input_ids"] == second.tokenizer("héllo 東京")["input_ids"]


def test_the_gguf_cache_is_keyed_by_content_so_a_copy_elsewhere_shares_it(monkeypatch,
                                                                            tmp_path):
    """Issue 16: the key was the absolute path and mtime, so every clone or venv wrote another
    517 MB copy of the converted default model."""
    from inferviz import models

    monkeypatch.setenv("INFERVIZ_CACHE", str(tmp_path / "cache"))
    a = tmp_path / "clone-a" / "m.gguf"
    b = tmp_path / "clone-b" / "m.gguf"
    for path in (a, b):
        path.parent.mkdir()
        path.write_bytes(b"GGUF" + bytes(range(256)) * 1000)
    other = tmp_path / "other.gguf"
    other.write_bytes(b"GGUF" + bytes(range(255)) * 1000)
    assert models._gguf_cache_path(a) == models._gguf_cache_path(b)
    assert models._gguf_cache_path(a) != models._gguf_cache_path(other)
    # a file is read once: its digest is remembered under its path, size and mtime
    reads = []
    real_open = Path.open
    monkeypatch.setattr(Path, "open", lambda self, *args, **kw: (
        reads.append(self), real_open(self, *args, **kw))[1])
    models._gguf_cache_path(a)
    assert a not in reads
    a.write_bytes(b"GGUF changed")  # a new file at the same path is read again
    assert models._gguf_cache_path(a) != models._gguf_cache_path(b)
    assert a in reads
