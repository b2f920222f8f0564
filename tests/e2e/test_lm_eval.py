"""EleutherAI's lm-evaluation-harness (lm_eval, pinned in tools/setup.sh) runs `local-completions`
fully offline against `troupe serve` with the default model, on the small local tasks in
lm_eval_tasks/: the multiple-choice task completes and each choice's log-likelihood equals the sum of
troupe's own echo prompt logprobs over the choice's tokens; the generate_until task returns troupe's
greedy continuations. lm-eval tokenizes through the server (/tokenizer_info, /tokenize)."""
import glob
import json
import math
import os
import subprocess
import sys

import pytest
import requests

TASKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lm_eval_tasks")
RUN_TIMEOUT_S = 240


def lm_eval_available():
    try:
        import lm_eval  # noqa: F401
        return True
    except ImportError:
        return False


pytestmark = pytest.mark.skipif(not lm_eval_available(), reason="lm_eval is not installed (tools/setup.sh)")


def tokenize(base_url, text):
    r = requests.post(base_url + "/tokenize", json={"prompt": text, "add_special_tokens": False}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["tokens"]


def encode_pair(base_url, context, continuation):
    """lm-eval's TemplateLM._encode_pair: trailing spaces move to the continuation; the whole text is
    encoded and split after the context's tokens."""
    n = len(context) - len(context.rstrip())
    if n:
        continuation = context[-n:] + continuation
        context = context[:-n]
    whole = tokenize(base_url, context + continuation)
    ctx = tokenize(base_url, context)
    return whole[:len(ctx)], whole[len(ctx):]


def run_lm_eval(server, model, task, tmp_path):
    out = tmp_path / task
    env = dict(os.environ, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               HF_HOME=str(tmp_path / "hf"), HF_DATASETS_CACHE=str(tmp_path / "hf" / "datasets"),
               TOKENIZERS_PARALLELISM="false")
    args = [sys.executable, "-m", "lm_eval", "--model", "local-completions",
            "--model_args", f"base_url={server.url}/v1/completions,model={model},tokenizer_backend=remote,"
                            "num_concurrent=1,max_retries=1,timeout=120",
            "--tasks", task, "--include_path", TASKS, "--output_path", str(out), "--log_samples",
            "--batch_size", "2"]
    p = subprocess.run(args, cwd=TASKS, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert p.returncode == 0, f"lm_eval failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-6000:]}"
    files = glob.glob(str(out / "**" / f"samples_{task}_*.jsonl"), recursive=True)
    assert files, f"no samples file under {out}:\n{p.stderr[-3000:]}"
    with open(files[0]) as f:
        return [json.loads(line) for line in f]


def arguments(sample):
    """A logged sample's request arguments, in order: [(arg_0, arg_1), ...]."""
    args = sample["arguments"]
    if isinstance(args, dict):  # lm-eval 0.4.13: {"gen_args_0": {"arg_0": ..., "arg_1": ...}, ...}
        keys = sorted(args, key=lambda k: int(k.rsplit("_", 1)[-1]))
        return [(args[k]["arg_0"], args[k]["arg_1"]) for k in keys]
    return [tuple(a) for a in args]


@pytest.fixture(scope="module")
def model(base_url):
    return requests.get(base_url + "/v1/models", timeout=10).json()["data"][0]["id"]


def test_multiple_choice_log_likelihoods_are_troupes_prompt_logprobs(server, base_url, model, tmp_path):
    samples = run_lm_eval(server, model, "troupe_capitals_mc", tmp_path)
    assert len(samples) == 6
    checked = 0
    for s in samples:
        for (context, continuation), resp in zip(arguments(s), s["resps"]):
            ll = float(resp[0][0])
            ctx, cont = encode_pair(base_url, context, continuation)
            r = requests.post(base_url + "/v1/completions", timeout=60,
                              json={"prompt": ctx + cont, "echo": True, "logprobs": 0, "max_tokens": 0}).json()
            lps = r["choices"][0]["logprobs"]["token_logprobs"]
            assert len(lps) == len(ctx) + len(cont)
            ours = sum(lps[len(ctx):])
            assert math.isclose(ll, ours, abs_tol=1e-5), (context, continuation, ll, ours)
            checked += 1
    assert checked == 24
    # The model knows these capitals: most questions are answered right.
    assert sum(s["acc"] for s in samples) >= 4


def test_generate_until_returns_troupes_greedy_text(server, base_url, model, tmp_path):
    samples = run_lm_eval(server, model, "troupe_capitals_gen", tmp_path)
    assert len(samples) == 6
    for s in samples:
        prompt = arguments(s)[0][0]
        got = s["resps"][0][0]
        # lm-eval sends the prompt as token ids from /tokenize without special tokens: so do we.
        ref = requests.post(base_url + "/v1/completions", timeout=60,
                            json={"prompt": tokenize(base_url, prompt), "max_tokens": 8, "temperature": 0,
                                  "stop": ["\n"]}).json()
        assert got == ref["choices"][0]["text"], (prompt, got, ref)
