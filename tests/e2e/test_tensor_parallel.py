"""Tensor parallelism on the CPU (--tp N: one executor actor per rank, heads and MLP columns split,
CPU all-reduce), driven through the real binary: the same greedy output as --tp 1 on the default
model (SmolLM2: 9 heads, 3 KV heads -> --tp 3) and on a fixture (--tp 2, 4); invalid splits refused
before anything loads; the plan and /metrics per rank; a rank that fails fails the step for all,
and the server recovers."""
import json
import os
import subprocess

import requests

from conftest import BINARY, wait_idle
from test_faults import assert_recovered, complete

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "fixtures")
TINY = os.environ.get("TROUPE_FIXTURES_DIR", os.path.abspath(FIXTURES)) + "/tiny-llama"


def generate(*args):
    p = subprocess.run([BINARY, "generate", "--json", "--temperature", "0", "--cache-max-entry-count", "64", "--session-len", "512",
                        "--num-threads", "1", *args], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_default_model_tp3_generates_what_tp1_does():
    args = ["--chat", "--prompt", "What is the capital of France?", "--max-tokens", "12"]
    one = generate(*args, "--tp", "1")
    three = generate(*args, "--tp", "3")
    assert one["token_ids"] == three["token_ids"], (one, three)
    assert "Paris" in three["text"]


def test_fixture_tp2_and_tp4_generate_what_tp1_does():
    args = ["--model", TINY, "--prompt-ids", "1,17,93,5,250,8,41", "--max-tokens", "24"]
    ref = generate(*args, "--tp", "1")["token_ids"]
    assert len(ref) == 24
    for tp in ("2", "4"):
        assert generate(*args, "--tp", tp)["token_ids"] == ref, tp


def test_invalid_tp_is_refused_before_loading():
    p = subprocess.run([BINARY, "generate", "--prompt", "hi", "--tp", "2"], capture_output=True, text=True, timeout=60)
    assert p.returncode != 0
    out = p.stdout + p.stderr
    assert "--tp 2 does not divide the model's 9 attention heads" in out, out
    assert "cpu_model" not in out  # no weights were loaded
    p = subprocess.run([BINARY, "serve", "--tp", "0"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "tp" in p.stderr


def test_plan_shows_every_rank():
    p = subprocess.run([BINARY, "plan", "--tp", "3", "--device", "cuda", "--device-memory", "24GiB", "--json"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    plan = json.loads(p.stdout)
    assert plan["tp"] == 3 and len(plan["ranks"]) == 3
    assert len({r["kv_bytes"] for r in plan["ranks"]}) == 1  # the minimum over ranks, identical


def test_server_tp3_metrics_per_rank_and_a_failing_rank(server_factory):
    # Rank 2 fails forward step 5 (mid-generation): the step fails on every rank, only that request
    # fails, and the group serves the next requests.
    srv = server_factory("--tp", "3", "--fault-inject", "fail_step=5,rank=2")
    r = complete(srv.url, max_tokens=20)
    assert r.status_code == 500, r.text
    assert r.json()["error"]["code"] == "device_error"
    assert "failing forward step 5" in srv.log()
    assert_recovered(srv.url)
    text = requests.get(srv.url + "/metrics", timeout=10).text
    for rank in range(3):
        assert f'troupe:memory_weights_bytes{{model_name="' in text
        line = [l for l in text.splitlines()
                if l.startswith("troupe:memory_kv_measured_bytes") and f'rank="{rank}"' in l]
        assert line, text
        assert float(line[0].split()[-1]) > 0
    assert wait_idle(srv.url)["troupe:kv_blocks_used"] == 0
