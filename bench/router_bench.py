#!/usr/bin/env python3
"""What the cluster router costs: per-token latency and throughput, direct to a worker versus
through a router in front of it (docs/cluster.md).

Starts one worker and one router (`troupe serve --role worker|router`) on 127.0.0.1 with a
near-free model (the tiny-llama fixture: a forward step is well under a millisecond), then runs the
same streaming load twice, once against the worker's own HTTP listener and once against the
router, and prints both and their difference:

  * latency: --latency-requests sequential streams of --tokens tokens; mean TTFT and mean
    inter-token latency (ITL). The router's added latency per token is ITL(router) - ITL(direct):
    each token crosses one more process (worker scheduler -> middleman -> router sink -> HTTP).
  * throughput: --concurrency client threads streaming --tokens tokens each for --seconds; tokens/s
    and requests/s. With a model this cheap the worker is not the limit, so the router's rate is
    its throughput limit on this machine (client, router and worker share its cores: say so when
    you quote it).

    python bench/router_bench.py --binary build/tools/troupe
    python bench/router_bench.py --binary build/tools/troupe --concurrency 64 --seconds 20 --json out.json
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_MODEL = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "fixtures", "tiny-llama"))
PROMPT = [1, 5, 9, 14, 3, 7, 22, 41]


def start(binary, args, timeout=60):
    log = tempfile.NamedTemporaryFile(prefix="router-bench-", suffix=".log", delete=False)
    proc = subprocess.Popen([binary, "serve", "--port", "0"] + args, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    url = cluster_port = None
    worker = "worker" in args
    while time.monotonic() < deadline:
        text = open(log.name, errors="replace").read()
        m = re.search(r"listening on (http://\S+)", text)
        p = re.search(r"worker published on \S+:(\d+)", text)
        if m and (p or not worker):
            url, cluster_port = m.group(1), int(p.group(1)) if p else None
            break
        if proc.poll() is not None:
            raise RuntimeError(f"{args} exited:\n{text[-3000:]}")
        time.sleep(0.05)
    if url is None:
        proc.kill()
        raise RuntimeError(f"{args} did not start within {timeout} s")
    return proc, url, cluster_port, log.name


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)


def stream(session, url, tokens):
    """One streaming completion over a raw socket (requests/urllib3 buffer chunked bodies, which
    hides inter-token gaps): (ttft_s, [inter-token gaps s], tokens received). `session` is unused."""
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    body = json.dumps({"prompt": PROMPT, "max_tokens": tokens, "ignore_eos": True, "stream": True,
                       "temperature": 0}).encode()
    head = (f"POST /v1/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    t0 = time.perf_counter()
    ttft, last, gaps, n = None, None, [], 0
    buf = b""
    with socket.create_connection((host, int(port)), timeout=120) as s:
        s.sendall(head + body)
        while True:
            d = s.recv(65536)
            if not d:
                break
            now = time.perf_counter()
            buf += d
            if b'"error"' in buf:
                raise RuntimeError(buf[-500:].decode(errors="replace"))
            k = d.count(b'data: {"id"')  # one per chunk: chunks open with their id (OpenAI's key order)
            for _ in range(k):
                if ttft is None:
                    ttft = now - t0
                else:
                    gaps.append(now - last)
                last = now
                n += 1
            if b"data: [DONE]" in buf[-64:]:
                break
    if not buf.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(buf[:300].decode(errors="replace"))
    return ttft, gaps, n


def latency(url, requests_n, tokens):
    s = requests.Session()
    stream(s, url, tokens)  # warm-up: connection, caches
    ttfts, gaps = [], []
    for _ in range(requests_n):
        ttft, g, _ = stream(s, url, tokens)
        ttfts.append(ttft)
        gaps.extend(g)
    return {"ttft_ms_mean": 1000 * statistics.mean(ttfts), "itl_ms_mean": 1000 * statistics.mean(gaps),
            "itl_ms_p50": 1000 * statistics.median(gaps),
            "itl_ms_p99": 1000 * sorted(gaps)[int(0.99 * (len(gaps) - 1))]}


def throughput(url, concurrency, seconds, tokens):
    stop_at = time.monotonic() + seconds
    lock = threading.Lock()
    totals = {"tokens": 0, "requests": 0, "errors": 0}

    def client():
        s = requests.Session()
        while time.monotonic() < stop_at:
            try:
                _, _, n = stream(s, url, tokens)
                with lock:
                    totals["tokens"] += n
                    totals["requests"] += 1
            except Exception:  # noqa: BLE001 - counted
                with lock:
                    totals["errors"] += 1

    t0 = time.monotonic()
    threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 120)
    elapsed = time.monotonic() - t0
    return {"tokens_per_s": totals["tokens"] / elapsed, "requests_per_s": totals["requests"] / elapsed,
            "errors": totals["errors"], "seconds": elapsed}


def cpu_seconds(pid):
    """user + system CPU seconds of a process so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.environ.get("TROUPE_BINARY", "build/tools/troupe"))
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--tokens", type=int, default=64, help="tokens per streamed request")
    ap.add_argument("--latency-requests", type=int, default=20)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--worker-threads", type=int, default=1, help="--num-threads of the worker")
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args()

    # Both nodes on 127.0.0.1 (the default --host): the link is plaintext (--cluster-insecure), so
    # this measures the router itself, not TLS (docs/cluster.md, "Trust model").
    common = ["--model", a.model, "--cache-max-entry-count", "1024", "--session-len", "512",
              "--cache-block-seq-len", "16", "--max-prefill-token-num", "512", "--drain-timeout", "3",
              "--cluster-insecure", "true"]
    procs = []
    try:
        w, w_url, w_port, _ = start(a.binary, ["--role", "worker", "--cluster-port", "0",
                                                "--num-threads", str(a.worker_threads)] + common)
        procs.append(w)
        r, r_url, _, _ = start(a.binary, ["--role", "router", "--workers", f"127.0.0.1:{w_port}"] + common)
        procs.append(r)
        deadline = time.monotonic() + 30
        while requests.get(r_url + "/health", timeout=5).status_code != 200:
            if time.monotonic() > deadline:
                raise RuntimeError("the router never saw the worker up")
            time.sleep(0.1)
        res = {"config": vars(a), "cpus": os.cpu_count()}
        for name, url in (("direct", w_url), ("router", r_url)):
            res[name] = {"latency": latency(url, a.latency_requests, a.tokens)}
        for name, url in (("direct", w_url), ("router", r_url)):
            cpu0 = cpu_seconds(r.pid)
            res[name]["throughput"] = thr = throughput(url, a.concurrency, a.seconds, a.tokens)
            thr["router_cpu_s"] = cpu_seconds(r.pid) - cpu0
        # The router's own CPU cost per token streamed through it: its throughput limit per core
        # (what the router could stream if it had a core to itself), independent of the client.
        thr = res["router"]["throughput"]
        tokens = thr["tokens_per_s"] * thr["seconds"]
        res["router_cpu_us_per_token"] = 1e6 * thr["router_cpu_s"] / max(tokens, 1)
        res["router_tokens_per_s_per_core"] = 1e6 / max(res["router_cpu_us_per_token"], 1e-9)
    finally:
        for p in reversed(procs):
            stop(p)
    d, rt = res["direct"], res["router"]
    res["router_added_itl_ms"] = rt["latency"]["itl_ms_mean"] - d["latency"]["itl_ms_mean"]
    res["router_added_ttft_ms"] = rt["latency"]["ttft_ms_mean"] - d["latency"]["ttft_ms_mean"]
    print(f"{'':8} {'TTFT ms':>9} {'ITL ms':>8} {'ITL p50':>8} {'ITL p99':>8} {'tok/s':>9} {'req/s':>8} {'errors':>6}")
    for name in ("direct", "router"):
        lat, thr = res[name]["latency"], res[name]["throughput"]
        print(f"{name:8} {lat['ttft_ms_mean']:9.2f} {lat['itl_ms_mean']:8.3f} {lat['itl_ms_p50']:8.3f} "
              f"{lat['itl_ms_p99']:8.3f} {thr['tokens_per_s']:9.0f} {thr['requests_per_s']:8.1f} {thr['errors']:6d}")
    print(f"router adds {res['router_added_itl_ms']:.3f} ms per token (mean ITL) and "
          f"{res['router_added_ttft_ms']:.2f} ms to the first token; throughput through the router "
          f"{rt['throughput']['tokens_per_s']:.0f} tokens/s at concurrency {a.concurrency} "
          f"({rt['throughput']['tokens_per_s'] / max(d['throughput']['tokens_per_s'], 1e-9):.0%} of direct) "
          f"on {res['cpus']} CPUs shared by client, router and worker")
    print(f"router CPU: {res['router_cpu_us_per_token']:.1f} us per token streamed, i.e. a limit of about "
          f"{res['router_tokens_per_s_per_core']:.0f} tokens/s per router core")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
