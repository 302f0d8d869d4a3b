"""Model loading: sources, GGUF safetensors cache, device/dtype, and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inferviz import Session
from inferviz.adapter import adapter_for
from inferviz.models import cache_dir, resolve_device, resolve_dtype


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
    with pytest.raises(OSError, match="could not load model 'someone/not-a-model'"):
        Session.from_pretrained("someone/not-a-model")


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
    first = Session.from_pretrained("default")
    assert first.source == "gguf"
    assert list(tmp_path.glob("gguf/*/model.safetensors"))
    second = Session.from_pretrained("default")
    assert second.source == "gguf-cache"
    ids = torch.tensor([first.encode("The capital of France is")])
    with torch.no_grad():
        torch.testing.assert_close(first.model(ids).logits, second.model(ids).logits)
    assert first.tokenizer("héllo 東京")["input_ids"] == second.tokenizer("héllo 東京")["input_ids"]
