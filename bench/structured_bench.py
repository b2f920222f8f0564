#!/usr/bin/env python3
"""End-to-end decode throughput with and without a JSON Schema constraint, at batch 1 and 8, against
a running troupe (or any server that takes response_format): each row sends `batch` concurrent
chat completions `rounds` times and reports generated tokens per second (usage.completion_tokens
over wall time) and the ratio to the unconstrained row of the same batch (the goal is >= 0.9).

    python bench/structured_bench.py --base-url http://127.0.0.1:8000 --max-tokens 128

The schema is a nested object with an open-ended array, so the constrained output runs long; the
unconstrained rows send ignore_eos so both sides generate comparable token counts.
"""
from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor

import requests

SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "maxLength": 40},
        "items": {"type": "array", "items": {
            "type": "object",
            "properties": {"name": {"type": "string", "maxLength": 20}, "qty": {"type": "integer"},
                           "tags": {"type": "array", "items": {"enum": ["red", "green", "blue"]}}},
            "required": ["name", "qty", "tags"], "additionalProperties": False}},
    },
    "required": ["title", "items"], "additionalProperties": False,
}
MESSAGES = [{"role": "user", "content": "List many items of a shopping inventory as JSON."}]


def one(session, url, max_tokens, constrained, seed):
    body = {"messages": MESSAGES, "max_tokens": max_tokens, "temperature": 0.7, "seed": seed}
    if constrained:
        body["response_format"] = {"type": "json_schema", "json_schema": {"name": "inv", "schema": SCHEMA}}
    else:
        body["ignore_eos"] = True
    r = session.post(url + "/v1/chat/completions", json=body, timeout=600)
    r.raise_for_status()
    return r.json()["usage"]["completion_tokens"]


def row(url, batch, rounds, max_tokens, constrained):
    sessions = [requests.Session() for _ in range(batch)]
    tokens = 0
    start = time.monotonic()
    with ThreadPoolExecutor(batch) as pool:
        for rnd in range(rounds):
            futs = [pool.submit(one, sessions[i], url, max_tokens, constrained, rnd * batch + i) for i in range(batch)]
            tokens += sum(f.result() for f in futs)
    wall = time.monotonic() - start
    return {"batch": batch, "schema": constrained, "tokens": tokens, "seconds": round(wall, 3),
            "tokens_per_s": round(tokens / wall, 2)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-url", default="http://127.0.0.1:8000")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args()
    one(requests.Session(), args.base_url, 8, True, 0)  # warm-up: compiles the schema into the cache
    rows = []
    for batch in (int(b) for b in args.batches.split(",")):
        free = row(args.base_url, batch, args.rounds, args.max_tokens, False)
        constrained = row(args.base_url, batch, args.rounds, args.max_tokens, True)
        constrained["ratio"] = round(constrained["tokens_per_s"] / free["tokens_per_s"], 3)
        rows += [free, constrained]
    print(f"{'batch':>5} {'schema':>6} {'tokens':>7} {'tok/s':>8} {'ratio':>6}")
    for r in rows:
        print(f"{r['batch']:>5} {str(r['schema']):>6} {r['tokens']:>7} {r['tokens_per_s']:>8} {r.get('ratio', ''):>6}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
