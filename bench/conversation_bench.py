#!/usr/bin/env python3
"""Multi-turn conversation benchmark for the Responses API (docs/responses.md): time to first token
of each turn of a conversation chained with previous_response_id, with resident conversation KV
(pins) and without, side by side in one run, while a background load evicts the prefix cache.

    python bench/conversation_bench.py --troupe build/tools/troupe --turns 10 \
        --turn-words 200 --output-tokens 64 --kv-blocks 72 --session-cache-fraction 0.67

With --troupe the bench starts two servers on 127.0.0.1 with the same small KV pool (--kv-blocks
blocks): one with --session-cache-fraction F (pins on), one with 0 (pins off); --pins-url and
--no-pins-url use servers started by hand instead. Before every turn each server gets a flush:
completions with distinct random prompts, --flush-factor x the tokens of the blocks no pin holds,
which evicts every unpinned cached block (LRU). The turn is then sent to both servers (alternating which goes
first) with identical input, so both see the same conversation and the same load.

Reported per turn and mode: TTFT (sending the streamed request -> first response.output_text.delta),
input tokens and cached_tokens (usage.input_tokens_details); the ratio turn-N TTFT / turn-1 TTFT;
and whether the flush evicted: pins-off turns must find (almost) nothing cached, pins-on turns
their whole history but the last partial block. Only `requests` is needed.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests

WORDS = ("river mountain lantern orchard harbor meadow compass thunder velvet canyon marble "
         "saddle beacon willow glacier ember falcon quartz tundra cobalt").split()
DEFAULT_MODEL = os.path.expanduser("~/.cache/troupe/models/SmolLM2-135M-Instruct.Q4_1.gguf")


def words(n: int, rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def stream_turn(session, url, headers, body):
    """POST a streamed response; return (ttft_s, final response object)."""
    t0 = time.perf_counter()
    ttft = None
    final = None
    with session.post(url + "/v1/responses", json=dict(body, stream=True), headers=headers, stream=True,
                      timeout=900) as r:
        r.raise_for_status()
        for line in r.iter_lines(decode_unicode=True):
            if not line or not line.startswith("data: "):
                continue
            ev = json.loads(line[6:])
            if ev["type"] == "response.output_text.delta" and ttft is None:
                ttft = time.perf_counter() - t0
            if ev["type"] in ("response.completed", "response.incomplete", "response.failed"):
                final = ev["response"]
    return (ttft if ttft is not None else time.perf_counter() - t0), final


def metric(text: str, name: str, labels: str = "") -> float:
    m = re.search(r"^" + re.escape(name) + r"(\{[^}]*" + re.escape(labels) + r"[^}]*\})? (\S+)$", text, re.M)
    return float(m.group(2)) if m else float("nan")


def flush(url, headers, tokens: int, prompt_words: int, concurrency: int, rng: random.Random) -> int:
    """Completions with distinct random prompts until `tokens` prompt tokens were computed: every
    unpinned cached block of the pool is evicted (LRU) by the time it returns. Returns the tokens."""
    lock = threading.Lock()
    done = [0]

    def one(seed):
        s = requests.Session()
        r2 = random.Random(seed)
        while True:
            with lock:
                if done[0] >= tokens:
                    return
            # A distinct number first: no two flush prompts (nor the conversation) share a block.
            prompt = f"{r2.getrandbits(48)} " + words(prompt_words, r2)
            r = s.post(url + "/v1/completions", json={"prompt": prompt, "max_tokens": 1, "temperature": 0},
                       headers=headers, timeout=900)
            r.raise_for_status()
            with lock:
                done[0] += r.json()["usage"]["prompt_tokens"]

    with ThreadPoolExecutor(concurrency) as ex:
        list(ex.map(one, [rng.getrandbits(32) for _ in range(concurrency)]))
    return done[0]


def completion_ttft(url, headers, prompt: str) -> float:
    """Streamed completion of 2 tokens: seconds to the first token."""
    t0 = time.perf_counter()
    with requests.post(url + "/v1/completions", json={"prompt": prompt, "max_tokens": 2, "temperature": 0,
                                                      "stream": True}, headers=headers, stream=True, timeout=900) as r:
        r.raise_for_status()
        for line in r.iter_lines(decode_unicode=True):
            if line and line.startswith("data: ") and line != "data: [DONE]":
                return time.perf_counter() - t0
    return time.perf_counter() - t0


def compute_floor(url, headers, prefix_words: int, new_words: int, reps: int, seed: int) -> dict:
    """What no cache can beat: the TTFT of `new_words` new tokens after a cached `prefix_words`-token
    prefix (the last turn's prefill: its attention still reads the whole history) over the TTFT of
    the same number of tokens alone (the first turn's), medians of alternating runs on one server."""
    rng = random.Random(seed)
    prefix = f"{rng.getrandbits(48)} " + words(prefix_words, rng)
    completion_ttft(url, headers, prefix)  # now cached (a request ending at its prefill caches its prompt)
    fresh, cached = [], []
    for _ in range(reps):
        fresh.append(completion_ttft(url, headers, f"{rng.getrandbits(48)} " + words(new_words, rng)))
        cached.append(completion_ttft(url, headers, prefix + f" {rng.getrandbits(48)} " + words(new_words, rng)))
    med = lambda xs: sorted(xs)[len(xs) // 2]
    return {"fresh_s": med(fresh), "after_prefix_s": med(cached), "ratio": med(cached) / med(fresh),
            "prefix_words": prefix_words, "new_words": new_words}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args, fraction: float, log_path: str):
    port = free_port()
    cmd = [args.troupe, "serve", "--model", args.model, "--host", "127.0.0.1", "--port", str(port),
           "--cache-max-entry-count", str(args.kv_blocks), "--session-len", str(args.session_len),
           "--session-cache-fraction", str(fraction)] + (["--num-threads", str(args.num_threads)]
                                                        if args.num_threads else [])
    log = open(log_path, "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited ({proc.returncode}); see {log_path}")
        try:
            if requests.get(url + "/health", timeout=2).status_code == 200:
                return proc, url
        except requests.RequestException:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"server did not become healthy; see {log_path}")


def run(args, urls: dict) -> dict:
    headers = {"Authorization": f"Bearer {args.api_key}"}
    modes = list(urls)

    def unpinned_tokens(mode):
        # The flush must cycle through every block a pin does not hold: the LRU evicts the oldest
        # cached block first, and the conversation's blocks were released last.
        text = requests.get(urls[mode] + "/metrics", timeout=10).text
        pinned = metric(text, "troupe:session_cache_pinned_blocks")
        blocks = metric(text, "troupe:kv_blocks_total") - (0 if pinned != pinned else pinned)
        return int(blocks * args.block_len * args.flush_factor)
    rng = random.Random(args.seed)
    sessions = {m: requests.Session() for m in modes}
    prev = {m: None for m in modes}
    history = {m: 0 for m in modes}  # tokens of the previous turn's prompt + output
    rows = []
    load = [os.getloadavg()[0]]
    for turn in range(1, args.turns + 1):
        user = words(args.turn_words, rng)
        with ThreadPoolExecutor(len(modes)) as ex:  # both servers flushed at once, then measured alone
            flushed = dict(zip(modes, ex.map(
                lambda m: flush(urls[m], headers, unpinned_tokens(m), args.flush_words,
                                args.flush_concurrency, random.Random(f"{args.seed}-{turn}-{m}")), modes)))
        row = {"turn": turn}
        order = modes if turn % 2 else modes[::-1]  # alternate which server goes first
        for m in order:
            body = {"input": user, "max_output_tokens": args.output_tokens, "temperature": 0}
            if prev[m]:
                body["previous_response_id"] = prev[m]
            ttft, final = stream_turn(sessions[m], urls[m], headers, body)
            usage = (final or {}).get("usage") or {}
            cached = (usage.get("input_tokens_details") or {}).get("cached_tokens", 0)
            row[m] = {"ttft_s": ttft, "input_tokens": usage.get("input_tokens"), "cached_tokens": cached,
                      "history_tokens": history[m], "flush_tokens": flushed[m]}
            history[m] = (usage.get("input_tokens") or 0) + (usage.get("output_tokens") or 0)
            prev[m] = (final or {}).get("id")
        rows.append(row)
        load.append(os.getloadavg()[0])
        print(f"turn {turn:2d}: " + "  |  ".join(
            f"{m}: TTFT {row[m]['ttft_s'] * 1000:7.1f} ms in {row[m]['input_tokens']:5d} cached {row[m]['cached_tokens']:5d}"
            for m in modes), flush=True)
    result = {"turns": rows, "load_avg_1m": {"min": min(load), "max": max(load)}, "ratio": {}, "evicted": {},
              "resident": {}}
    for m in modes:
        result["ratio"][m] = rows[-1][m]["ttft_s"] / rows[0][m]["ttft_s"]
    # Eviction check: without pins a turn finds at most a block of its history (the flush evicted
    # the rest); with pins it finds all of it but the last partial block.
    later = rows[1:]
    result["evicted"]["no-pins"] = all(r["no-pins"]["cached_tokens"] <= args.block_len for r in later) \
        if "no-pins" in modes else None
    if "pins" in modes:
        result["resident"] = {"pins": all(r["pins"]["cached_tokens"] >= r["pins"]["history_tokens"] - args.block_len
                                          for r in later)}
        text = requests.get(urls["pins"] + "/metrics", timeout=10).text
        if args.floor_reps > 0:
            last = rows[-1]["pins"]
            result["floor"] = compute_floor(urls["pins"], headers, last["cached_tokens"],
                                            last["input_tokens"] - last["cached_tokens"], args.floor_reps, args.seed)
        result["pins_released"] = {reason: metric(text, "troupe:session_cache_pins_released_total", f'"{reason}"')
                                   for reason in ("unpinned", "expired", "pressure", "budget")}
    return result


def report(args, res: dict, modes) -> None:
    rows = res["turns"]
    print()
    print(f"{'turn':>4} | " + " | ".join(f"{m + ' TTFT ms':>16} {'cached/hist':>12}" for m in modes))
    for r in rows:
        print(f"{r['turn']:>4} | " + " | ".join(
            f"{r[m]['ttft_s'] * 1000:>16.1f} {str(r[m]['cached_tokens']) + '/' + str(r[m]['history_tokens']):>12}"
            for m in modes))
    for m in modes:
        print(f"{m}: turn {len(rows)} TTFT / turn 1 TTFT = {res['ratio'][m]:.2f}")
    if "no-pins" in modes:
        print(f"flush evicted the unpinned prefix every turn: {res['evicted']['no-pins']}")
    if "pins" in modes:
        print(f"pinned history found every turn: {res['resident']['pins']}; "
              f"pins released: {res.get('pins_released')}")
    if "floor" in res:
        f = res["floor"]
        print(f"compute floor: {f['new_words']} new tokens after a cached {f['prefix_words']}-token prefix take "
              f"{f['after_prefix_s'] * 1000:.0f} ms vs {f['fresh_s'] * 1000:.0f} ms alone: ratio {f['ratio']:.2f} "
              f"(the best any resident cache can do on this machine)")
    print(f"1-minute load average during the run: {res['load_avg_1m']['min']:.1f}..{res['load_avg_1m']['max']:.1f} "
          f"({os.cpu_count()} CPUs)")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--troupe", help="troupe binary: start a pins-on and a pins-off server")
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--kv-blocks", type=int, default=72, help="KV pool of each started server, in blocks")
    p.add_argument("--block-len", type=int, default=64, help="the servers' --cache-block-seq-len")
    p.add_argument("--session-len", type=int, default=4096)
    p.add_argument("--session-cache-fraction", type=float, default=0.67, help="the pins-on server's")
    p.add_argument("--num-threads", type=int, default=0)
    p.add_argument("--pins-url", help="a running server with pins (instead of --troupe)")
    p.add_argument("--no-pins-url", help="a running server started with --session-cache-fraction 0")
    p.add_argument("--api-key", default="bench")
    p.add_argument("--turns", type=int, default=10)
    p.add_argument("--turn-words", type=int, default=200, help="user words per turn (about a token each)")
    p.add_argument("--output-tokens", type=int, default=64)
    p.add_argument("--flush-factor", type=float, default=1.2,
                   help="flush prompt tokens per turn, x the tokens of the blocks no pin holds")
    p.add_argument("--flush-words", type=int, default=400)
    p.add_argument("--flush-concurrency", type=int, default=1)
    p.add_argument("--floor-reps", type=int, default=3,
                   help="after the turns, measure the compute floor (see compute_floor) this many times; 0: skip")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)

    procs = []
    urls = {}
    try:
        if args.troupe:
            for mode, frac in (("pins", args.session_cache_fraction), ("no-pins", 0.0)):
                proc, url = start_server(args, frac, f"/tmp/conversation_bench_{mode}_{os.getpid()}.log")
                procs.append(proc)
                urls[mode] = url
        else:
            if args.pins_url:
                urls["pins"] = args.pins_url
            if args.no_pins_url:
                urls["no-pins"] = args.no_pins_url
        if not urls:
            p.error("give --troupe, or --pins-url and/or --no-pins-url")
        res = run(args, urls)
        report(args, res, list(urls))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(res, f, indent=2)
        return res
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()
    sys.exit(0)
