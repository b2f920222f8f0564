#!/usr/bin/env python3
"""Multi-turn conversation benchmark for the Responses API (docs/responses.md): time to first token
of each turn of a conversation chained with previous_response_id, while a background load of
unrelated long prompts churns the prefix cache.

    python bench/conversation_bench.py --base-url http://127.0.0.1:8000 --turns 10 \
        --turn-tokens 200 --output-tokens 64 --background 2

Each turn adds about --turn-tokens prompt tokens (text of repeated words) and asks --output-tokens
tokens (max_output_tokens); TTFT is the time from sending the streamed request to its first
response.output_text.delta. Run it against a server with resident conversations (the default
--session-cache-fraction) and one started with --session-cache-fraction 0 to compare: without
pins, the background load evicts the conversation's prefix and each turn recomputes the whole
history, so TTFT grows with the turn; with pins it stays near the first turn's.
Reports per turn: TTFT, input tokens and cached_tokens; and turn-N TTFT / turn-1 TTFT.
Only `requests` is needed.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time

import requests

WORDS = ("river mountain lantern orchard harbor meadow compass thunder velvet canyon marble "
         "saddle beacon willow glacier ember falcon quartz tundra cobalt").split()


def words(n: int, rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def stream_turn(session, url, headers, body):
    """POST a streamed response; return (ttft_s, final response object)."""
    t0 = time.perf_counter()
    ttft = None
    final = None
    with session.post(url + "/v1/responses", json=dict(body, stream=True), headers=headers, stream=True,
                      timeout=600) as r:
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


def background(url, headers, stop, prompt_words, seed):
    """Unrelated long prompts, one after another: they fill and churn the prefix cache."""
    rng = random.Random(seed)
    s = requests.Session()
    while not stop.is_set():
        try:
            s.post(url + "/v1/completions", json={"prompt": words(prompt_words, rng), "max_tokens": 8},
                   headers=headers, timeout=600)
        except requests.RequestException:
            time.sleep(0.2)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base-url", default="http://127.0.0.1:8000")
    p.add_argument("--api-key", default="bench")
    p.add_argument("--turns", type=int, default=10)
    p.add_argument("--turn-tokens", type=int, default=200, help="prompt words added per turn (about a token each)")
    p.add_argument("--output-tokens", type=int, default=64)
    p.add_argument("--background", type=int, default=2, help="threads sending unrelated long prompts")
    p.add_argument("--background-words", type=int, default=1500)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", help="write the per-turn results here")
    args = p.parse_args(argv)

    headers = {"Authorization": f"Bearer {args.api_key}"}
    rng = random.Random(args.seed)
    stop = threading.Event()
    threads = [threading.Thread(target=background, args=(args.base_url, headers, stop, args.background_words, i),
                                daemon=True) for i in range(args.background)]
    for t in threads:
        t.start()
    session = requests.Session()
    prev = None
    rows = []
    try:
        for turn in range(1, args.turns + 1):
            body = {"input": words(args.turn_tokens, rng), "max_output_tokens": args.output_tokens, "temperature": 0}
            if prev:
                body["previous_response_id"] = prev
            ttft, final = stream_turn(session, args.base_url, headers, body)
            usage = (final or {}).get("usage") or {}
            rows.append({"turn": turn, "ttft_s": ttft, "input_tokens": usage.get("input_tokens"),
                         "cached_tokens": (usage.get("input_tokens_details") or {}).get("cached_tokens")})
            prev = (final or {}).get("id")
            print(f"turn {turn:2d}: TTFT {ttft * 1000:8.1f} ms  input {rows[-1]['input_tokens']}  "
                  f"cached {rows[-1]['cached_tokens']}", flush=True)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    ratio = rows[-1]["ttft_s"] / rows[0]["ttft_s"] if rows and rows[0]["ttft_s"] > 0 else float("nan")
    print(f"turn {len(rows)} TTFT / turn 1 TTFT = {ratio:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"turns": rows, "last_over_first": ratio}, f, indent=2)
    return ratio


if __name__ == "__main__":
    main()
    sys.exit(0)
