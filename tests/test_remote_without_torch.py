"""A session over an inference server never imports torch: the client of tests/fake_server.py
runs in a fresh subprocess (the server, computing its answers with torch, stays in this one)
and connects, expands, runs greedy and reads a token table without loading it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from fake_server import FakeServer
from tiny_models import VOCAB, tiny_model, tiny_tokenizer

ROOT = Path(__file__).resolve().parents[1]

CLIENT = """
import json, sys
import inferviz as iv

s = iv.Session.connect(sys.argv[1], vocab_size={vocab}, top_logprobs=5)
result = s.generate("t5 t17 t20", strategy="greedy", max_new_tokens=4)
children = s.expand(result.tree, result.tree.root_id, k=3, top_p=0.9)
table = s.token_table("t5 t17 t20")
s.close()
print(json.dumps({{
    "tokens": result.tree.token_ids(result.node_id),
    "children": len(children),
    "table_rows": len(table),
    "torch": sorted(m for m in sys.modules if m == "torch" or m.startswith("torch.")),
    "engine": "inferviz.engine" in sys.modules,
}}))
"""


@pytest.fixture(scope="module")
def server():
    with FakeServer(tiny_model("llama"), tiny_tokenizer(), dialect="vllm",
                    max_logprobs=VOCAB) as running:
        yield running


def run_client(url: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CLIENT.format(vocab=VOCAB), url],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_remote_session_connects_and_runs_greedy_without_importing_torch(server):
    seen = run_client(server.url)
    assert len(seen["tokens"]) == 3 + 1 + 4  # BOS, the prompt, four greedy tokens
    assert seen["children"] == 3 and seen["table_rows"] == 3
    assert seen["torch"] == []
    assert not seen["engine"]
