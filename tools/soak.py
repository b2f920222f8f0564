#!/usr/bin/env python3
"""Soak test for `troupe serve`: N requests (mixed prompt/output lengths and sampling parameters,
seeded), --concurrency clients, ~20% of them dropping the connection mid-stream, some cancelled
over the WebSocket. At the end, from /metrics and the process: no leased KV block, nothing running
or waiting, every non-dropped request answered correctly, and (when this script started the server)
resident memory within --rss-tolerance of its value after warm-up. Exits 1 on any violation.

  tools/soak.py http://127.0.0.1:8000 --requests 10000 --concurrency 16
  tools/soak.py --binary build/tools/troupe --requests 200 --concurrency 16
  tools/soak.py --binary build/tools/troupe --token-ids 512 --server-arg=--model \
      --server-arg=../shared/fixtures/tiny-llama --server-arg=--session-len --server-arg=1024

--token-ids VOCAB is for a model without a tokenizer (the tiny-llama fixture): prompts are token ids
below VOCAB sent to /v1/completions only, and greedy answers are compared by their token ids
(logprobs), since such a model's text is empty. A --server-arg flag replaces the small default of
the same name.
"""
import argparse
import concurrent.futures
import json
import os
import random
import re
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

import requests

WORDS = ("the quick brown fox jumps over a lazy dog while seven wizards quietly hex bold "
         "vampires and kings compute tensors on distant servers every single night").split()
# 32 KV blocks: the warm-up touches every block cheaply (the CPU KV pool is committed on first use,
# so untouched blocks would grow RSS for reasons other than a leak) and 16 clients cause preemptions.
SERVER_FLAGS = ["--cache-max-entry-count", "32", "--session-len", "2048", "--num-threads", "1",
                "--drain-timeout", "5"]


def log(msg):
    print(f"[soak {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def metrics(url, timeout=10):
    out = {}
    for line in requests.get(url + "/metrics", timeout=timeout).text.splitlines():
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$", line)
        if m and not line.startswith("#"):
            out.setdefault(m.group(1), float(m.group(3)))
    return out


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


class Server:
    def __init__(self, binary, extra):
        self.log = tempfile.NamedTemporaryFile(prefix="troupe-soak-", suffix=".log", delete=False)
        named = {f for f in extra if f.startswith("--")}
        flags = [x for i in range(0, len(SERVER_FLAGS), 2) if SERVER_FLAGS[i] not in named
                 for x in SERVER_FLAGS[i:i + 2]]
        self.proc = subprocess.Popen([binary, "serve", "--port", "0"] + flags + extra,
                                     stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        self.url = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"troupe serve exited with {self.proc.returncode}: {self.text()[-3000:]}")
            m = re.search(r"listening on http://[^\s:]+:(\d+)", self.text())
            if m:
                self.url = f"http://127.0.0.1:{m.group(1)}"
                try:
                    if requests.get(self.url + "/ready", timeout=2).status_code == 200:
                        return
                except requests.RequestException:
                    pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("troupe serve did not become ready in 120 s")

    def text(self):
        with open(self.log.name, errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        return self.proc.returncode


def make_spec(seed, i, drop_frac, ws_frac, vocab=0):
    r = random.Random(seed * 1_000_003 + i)
    words = r.randint(1, 60)
    prompt = " ".join(r.choice(WORDS) for _ in range(words)) + f" #{i % 97}"
    if vocab:  # token ids for a model without a tokenizer; a few shared ones give prefix hits
        prompt = [3 + (i % 97) % (vocab - 3)] + [r.randint(3, vocab - 1) for _ in range(words)]
    greedy = r.random() < 0.4
    chat = r.random() < 0.4
    spec = {
        "i": i,
        "chat": chat and not vocab,
        "ids": bool(vocab),
        "stream": r.random() < 0.5,
        "prompt": prompt,
        "max_tokens": r.choice([1, 2, 4, 8, 12, 16, 24]),
        "ignore_eos": r.random() < 0.5,
        "temperature": 0.0 if greedy else round(r.uniform(0.2, 1.5), 2),
        "top_p": 1.0 if greedy else round(r.uniform(0.5, 1.0), 2),
        "top_k": -1 if r.random() < 0.5 else r.randint(1, 50),
        "seed": r.randint(0, 2**31),
        "kind": "normal",
    }
    x = r.random()
    if x < drop_frac:
        spec.update(kind="drop", max_tokens=r.choice([64, 200, 400]), ignore_eos=True, stream=True, temperature=0.8,
                    drop_after=r.randint(0, 4), reset=r.random() < 0.5)
    elif x < drop_frac + ws_frac:
        spec.update(kind="ws_cancel", max_tokens=300, ignore_eos=True, temperature=0.8, cancel_after=r.randint(1, 3))
    return spec


def body_of(spec):
    b = {"max_tokens": spec["max_tokens"], "temperature": spec["temperature"], "top_p": spec["top_p"],
         "top_k": spec["top_k"], "seed": spec["seed"], "ignore_eos": spec["ignore_eos"], "stream": spec["stream"]}
    if spec["chat"]:
        b["messages"] = [{"role": "user", "content": spec["prompt"]}]
    else:
        b["prompt"] = spec["prompt"]
    if spec["stream"]:
        b["stream_options"] = {"include_usage": True}
    if spec["ids"]:
        b["logprobs"] = 1  # the answer's token ids: the text of a tokenizer-less model is empty
    return b


def text_of(spec, choice):
    if spec["ids"]:
        return " ".join((choice.get("logprobs") or {}).get("tokens") or [])
    if spec["chat"]:
        return choice.get("message", {}).get("content") or choice.get("delta", {}).get("content") or ""
    return choice.get("text") or ""


def check_answer(spec, finish, completion_tokens):
    mt = spec["max_tokens"]
    if finish not in ("stop", "length"):
        return f"finish_reason {finish!r}"
    if completion_tokens is None or not 0 <= completion_tokens <= mt:
        return f"completion_tokens {completion_tokens} not in [0, {mt}]"
    if spec["ignore_eos"] and (completion_tokens != mt or finish != "length"):
        return f"ignore_eos: {completion_tokens} tokens, finish {finish} (want {mt}, length)"
    return None


def run_normal(url, sess, spec):
    path = "/v1/chat/completions" if spec["chat"] else "/v1/completions"
    r = sess.post(url + path, json=body_of(spec), timeout=300, stream=spec["stream"])
    if r.status_code != 200:
        return f"HTTP {r.status_code}: {r.text[:300]}", None
    if not spec["stream"]:
        j = r.json()
        ch = j["choices"][0]
        text = text_of(spec, ch)
        return check_answer(spec, ch["finish_reason"], j["usage"]["completion_tokens"]), text
    text, finish, usage, done = "", None, None, False
    for line in r.iter_lines():
        if not line:
            continue
        if not line.startswith(b"data: "):
            return f"bad SSE line {line[:200]!r}", None
        payload = line[6:]
        if payload == b"[DONE]":
            done = True
            break
        ev = json.loads(payload)
        if "error" in ev:
            return f"SSE error {ev}", None
        if ev.get("usage"):
            usage = ev["usage"]
        for ch in ev.get("choices", []):
            piece = text_of(spec, ch)
            text += (" " if spec["ids"] and text and piece else "") + piece
            if ch.get("finish_reason"):
                finish = ch["finish_reason"]
    if not done:
        return "stream ended without [DONE]", None
    return check_answer(spec, finish, usage and usage.get("completion_tokens")), text


def run_drop(url, spec):
    host, port = url.replace("http://", "").split(":")
    body = json.dumps(body_of(spec)).encode()
    path = "/v1/chat/completions" if spec["chat"] else "/v1/completions"
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    s = socket.create_connection((host, int(port)), timeout=120)
    try:
        s.sendall(head + body)
        data = b""
        while data.count(b"data: ") < spec["drop_after"]:
            chunk = s.recv(4096)
            if not chunk:
                return f"server closed before {spec['drop_after']} events: {data[:200]!r}"
            data += chunk
        if spec["reset"]:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        s.close()
    return None


def run_ws_cancel(url, spec):
    from websockets.sync.client import connect
    body = body_of(spec)
    body.pop("stream", None)
    body.pop("stream_options", None)
    gid = f"g{spec['i']}"
    with connect(url.replace("http://", "ws://") + "/v1/ws", open_timeout=30, close_timeout=5) as ws:
        ws.send(json.dumps({"type": "generate", "id": gid, **body}))
        tokens, sent_cancel = 0, False
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            f = json.loads(ws.recv(timeout=120))
            if f.get("type") == "error":
                return f"ws error frame {f}"
            if f.get("type") == "token":
                tokens += 1
                if tokens >= spec["cancel_after"] and not sent_cancel:
                    ws.send(json.dumps({"type": "cancel", "id": gid}))
                    sent_cancel = True
            elif f.get("type") == "done":
                if f.get("finish_reason") not in ("abort", "length"):
                    return f"ws done with finish_reason {f.get('finish_reason')}"
                return None
        return "ws: no done frame in 300 s"


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts = {"answered": 0, "dropped": 0, "ws_cancelled": 0, "failed": 0}
        self.failures = []
        self.greedy = {}  # (prompt, chat, max_tokens) -> text for greedy requests
        self.greedy_mismatch = 0
        self.done = 0


def one(url, spec, stats, tls):
    if not hasattr(tls, "sess"):
        tls.sess = requests.Session()
    try:
        if spec["kind"] == "drop":
            err, key = run_drop(url, spec), "dropped"
        elif spec["kind"] == "ws_cancel":
            err, key = run_ws_cancel(url, spec), "ws_cancelled"
        else:
            err, text = run_normal(url, tls.sess, spec)
            key = "answered"
            if err is None and spec["temperature"] == 0.0:
                k = (str(spec["prompt"]), spec["chat"], spec["max_tokens"], spec["ignore_eos"])
                with stats.lock:
                    prev = stats.greedy.setdefault(k, text)
                    if prev != text:
                        stats.greedy_mismatch += 1
    except Exception as e:  # noqa: BLE001 - every failure is counted and reported
        err, key = f"{type(e).__name__}: {e}", spec["kind"]
    with stats.lock:
        stats.done += 1
        if err is None:
            stats.counts[key] += 1
        else:
            stats.counts["failed"] += 1
            if len(stats.failures) < 20:
                stats.failures.append(f"request {spec['i']} ({spec['kind']}): {err}")


def fill_kv_cache(url, pool, seed, vocab=0):
    """Touch every KV block once (prefill-only requests with distinct random token ids, so no
    prefix hit): the CPU pool is committed page by page on first use, and RSS growth from that is
    not a leak. Part of the warm-up."""
    total = int(metrics(url).get("troupe:kv_blocks_total", 0))
    if total <= 0:
        return
    r = random.Random(seed ^ 0x5EED)
    per = 240  # tokens per request: under 4 blocks of 64, well under any small session_len
    n = (total * 64) // per + 2

    def go(k):
        ids = [r.randint(3, vocab - 1) if vocab else r.randint(100, 20000) for _ in range(per)]
        try:
            requests.post(url + "/v1/completions", json={"prompt": ids, "max_tokens": 1}, timeout=300)
        except requests.RequestException:
            pass

    list(pool.map(go, range(n)))


def wait_idle(url, timeout):
    deadline = time.monotonic() + timeout
    while True:
        m = metrics(url)
        keys = ("troupe:num_requests_running", "troupe:num_requests_waiting", "troupe:kv_blocks_used")
        if all(m.get(k, -1) == 0 for k in keys) or time.monotonic() > deadline:
            return {k: m.get(k) for k in keys}
        time.sleep(0.2)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("url", nargs="?", help="a running server, e.g. http://127.0.0.1:8000")
    ap.add_argument("--binary", help="start `BINARY serve` (small flags) instead of using URL")
    ap.add_argument("--server-arg", action="append", default=[], help="extra flag for the started server")
    ap.add_argument("--requests", type=int, default=10000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--drop-fraction", type=float, default=0.2)
    ap.add_argument("--ws-cancel-fraction", type=float, default=0.05)
    ap.add_argument("--warmup", type=int, default=0, help="requests before the RSS baseline (default: 10%%, 100..500)")
    ap.add_argument("--token-ids", type=int, default=0, metavar="VOCAB",
                    help="token-id prompts below VOCAB, completions only (a model without a tokenizer)")
    ap.add_argument("--rss-tolerance", type=float, default=0.05)
    ap.add_argument("--idle-timeout", type=float, default=30.0)
    args = ap.parse_args()
    if bool(args.url) == bool(args.binary):
        ap.error("give exactly one of URL or --binary")

    server = Server(args.binary, args.server_arg) if args.binary else None
    url = server.url if server else args.url.rstrip("/")
    pid = server.proc.pid if server else None
    warmup = args.warmup or max(100, min(500, args.requests // 10))
    warmup = min(warmup, args.requests)
    specs = [make_spec(args.seed, i, args.drop_fraction, args.ws_cancel_fraction, args.token_ids)
             for i in range(args.requests)]
    stats = Stats()
    tls = threading.local()
    violations = []
    t0 = time.monotonic()
    rss_warm = rss_end = None
    try:
        log(f"{args.requests} requests, concurrency {args.concurrency}, seed {args.seed}, server {url}")
        with concurrent.futures.ThreadPoolExecutor(args.concurrency) as pool:
            list(pool.map(lambda s: one(url, s, stats, tls), specs[:warmup]))
            fill_kv_cache(url, pool, args.seed, args.token_ids)
            idle = wait_idle(url, args.idle_timeout)
            if pid:
                rss_warm = rss_kib(pid)
            log(f"warm-up done ({warmup} requests, {time.monotonic() - t0:.1f} s): idle {idle}, "
                f"RSS {rss_warm} KiB")
            futs = [pool.submit(one, url, s, stats, tls) for s in specs[warmup:]]
            last = time.monotonic()
            for _ in concurrent.futures.as_completed(futs):
                if time.monotonic() - last > 30:
                    last = time.monotonic()
                    log(f"{stats.done}/{args.requests} done, {stats.counts}" +
                        (f", RSS {rss_kib(pid)} KiB" if pid else ""))
        elapsed = time.monotonic() - t0
        idle = wait_idle(url, args.idle_timeout)
        for k, v in idle.items():
            if v != 0:
                violations.append(f"{k} is {v} after the run (want 0)")
        if stats.counts["failed"]:
            violations.append(f"{stats.counts['failed']} requests failed")
        if stats.greedy_mismatch:
            violations.append(f"{stats.greedy_mismatch} greedy requests answered differently from an earlier identical one")
        if requests.get(url + "/health", timeout=10).status_code != 200:
            violations.append("/health is not 200 after the run")
        if pid:
            if server.proc.poll() is not None:
                violations.append(f"the server died (exit {server.proc.returncode})")
            else:
                rss_end = rss_kib(pid)
                if rss_warm and abs(rss_end - rss_warm) > args.rss_tolerance * rss_warm:
                    violations.append(f"RSS {rss_end} KiB at the end vs {rss_warm} KiB after warm-up "
                                      f"(> {args.rss_tolerance:.0%})")
    finally:
        if server:
            code = server.stop()
            if code != 0:
                violations.append(f"troupe serve exited with {code} after SIGTERM")
            if violations:
                sys.stderr.write("server log tail:\n" + server.text()[-3000:] + "\n")
            os.unlink(server.log.name)

    summary = {"requests": args.requests, "concurrency": args.concurrency, "elapsed_s": round(elapsed, 1),
               "requests_per_s": round(args.requests / elapsed, 2), **stats.counts,
               "greedy_checked": len(stats.greedy), "rss_warm_kib": rss_warm, "rss_end_kib": rss_end,
               "final_gauges": idle, "violations": violations}
    print("SOAK SUMMARY " + json.dumps(summary), flush=True)
    for f in stats.failures:
        print("  failure: " + f)
    for v in violations:
        print("  VIOLATION: " + v)
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
