"""A real llama.cpp server (``llama-server``, built by ``make llama-server``) serving the embedded
default GGUF on 127.0.0.1, started and stopped by the tests that need one."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from servers import free_port, stop_process_group

REPO = Path(__file__).resolve().parents[1]
BINARY = Path(os.environ.get("INFERVIZ_LLAMA_SERVER",
                             REPO / ".cache" / "llama-server" / "llama-server"))
START_TIMEOUT_S = 120


def require_binary() -> Path:
    """The llama-server binary, or skip saying how to build it."""
    if not BINARY.exists():
        pytest.skip(f"llama-server is not built at {BINARY}: run `make llama-server` "
                    f"(make test does)")
    return BINARY


def dequantized_gguf(src: Path, dst: Path) -> Path:
    """A copy of the GGUF ``src`` with every tensor dequantised to float32 (metadata as is):
    the weights transformers computes with when it loads ``src``, so llama.cpp and a local
    Session differ only by their kernels' rounding. Written once (``dst`` is reused)."""
    import gguf
    import numpy as np

    if dst.exists():
        return dst
    reader = gguf.GGUFReader(src)
    arch = reader.fields[gguf.Keys.General.ARCHITECTURE].contents()
    part = dst.with_suffix(".part")
    writer = gguf.GGUFWriter(part, arch)
    for field in reader.fields.values():
        if field.name in (gguf.Keys.General.ARCHITECTURE, gguf.Keys.General.FILE_TYPE) \
                or field.name.startswith("GGUF."):
            continue
        kind = field.types[0]
        sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), kind, sub_type=sub)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    for tensor in reader.tensors:
        data = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        writer.add_tensor(tensor.name, np.ascontiguousarray(data, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    part.rename(dst)
    return dst


class LlamaServer:
    """``llama-server -m <default gguf>`` on a free port; ``url`` once ``/health`` answers 200
    (the model is loaded). ``parallel`` slots decode concurrent requests together."""

    def __init__(self, parallel: int = 4, ctx_per_slot: int = 1024, threads: int = 2,
                 model: Path | None = None) -> None:
        from inferviz.models import default_gguf_path

        self.model = Path(model) if model is not None else default_gguf_path()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(tempfile.mkstemp(prefix="llama-server-", suffix=".log")[1])
        self.command = [str(require_binary()), "-m", str(self.model),
                        "--host", "127.0.0.1", "--port", str(self.port),
                        "-c", str(ctx_per_slot * parallel), "-np", str(parallel),
                        "-t", str(threads), "--no-webui"]
        self.process: subprocess.Popen | None = None

    def start(self) -> "LlamaServer":
        with self.log.open("w") as out:
            self.process = subprocess.Popen(self.command, stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama-server exited ({self.process.returncode}):\n"
                                   f"{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"llama-server not ready after {START_TIMEOUT_S} s:\n"
                           f"{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL, as a crashed or killed server (no goodbye to open connections)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None:
            stop_process_group(self.process)

    def __enter__(self) -> "LlamaServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
