#!/usr/bin/env python3
"""Serving side by side: `troupe serve` and llama.cpp's `llama-server` on the same GGUF, the same
thread count and the same load from bench/serve_bench.py, one server after the other in one run.

Each round starts one server on a free 127.0.0.1 port, waits until it is ready, runs serve_bench at
every --concurrency (random token-id prompts of --input-len, --output-len tokens out, ignore_eos),
and stops it (SIGTERM, then SIGKILL after a bound) whatever happened; the next round starts with the
other server, so load from other processes hits both alike. Prints each pair of output tokens/s
(the median over the rounds) and the ratio troupe / llama.cpp.

    python3 bench/serve_compare.py --threads 2 --rounds 3           # default model, c = 1 and 8
    python3 bench/serve_compare.py --model X.gguf --concurrency 1,4,16 --output-len 64 --json out.json

llama-server is built once from the llama.cpp that bench/llama_cpp_compare.py builds (the
llama-cpp-python source package, cached in $LLAMA_CPP_DIR, default ~/.cache/troupe/llama.cpp): the
same build folder reconfigured with the server on and no web UI download.
"""
from __future__ import annotations

import argparse
import atexit
import json
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import llama_cpp_compare  # noqa: E402  (bench/ is not a package)
import serve_bench  # noqa: E402

START_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 20.0
_live = []  # servers started and not yet stopped


def _kill_live_servers():
    for srv in list(_live):
        if srv.proc.poll() is None:
            srv.proc.kill()
            srv.proc.wait(timeout=STOP_TIMEOUT_S)


def _on_sigterm(signum, frame):
    # SIGTERM (timeout(1), a CI runner) would end Python without its finally blocks: kill the servers
    # first, which also fails the requests in flight at once, then unwind.
    _kill_live_servers()
    raise SystemExit(128 + signum)


atexit.register(_kill_live_servers)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def build_llama_server():
    """The llama-server binary, built on first use in llama_cpp_compare's build folder."""
    bin_dir = llama_cpp_compare.build_llama_cpp()
    server = os.path.join(bin_dir, "llama-server")
    if os.access(server, os.X_OK):
        return server
    build = os.path.dirname(bin_dir)
    log("building llama-server in " + build + "; this takes minutes ...")
    subprocess.run(["cmake", "-B", build, "-DLLAMA_BUILD_SERVER=ON", "-DLLAMA_BUILD_UI=OFF",
                    "-DLLAMA_USE_PREBUILT_UI=OFF"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["nice", "cmake", "--build", build, "-j", str(os.cpu_count() or 2), "--target", "llama-server"],
                   check=True, stdout=subprocess.DEVNULL)
    return server


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One server process: started on a free port, ready when `ready_path` answers 200, always stopped."""

    def __init__(self, name, argv, ready_path):
        self.name, self.argv, self.ready_path = name, argv, ready_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(prefix=f"serve-compare-{name}-", suffix=".log", delete=False)
        self.proc = None

    def __enter__(self):
        argv = [a.replace("{PORT}", str(self.port)) for a in self.argv]
        log("$ " + " ".join(argv))
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        _live.append(self)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()

    def tail(self, n=3000):
        with open(self.log.name, errors="replace") as f:
            return f.read()[-n:]

    def _wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                if requests.get(self.url + self.ready_path, timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} not ready within {START_TIMEOUT_S} s:\n{self.tail()}")
            time.sleep(0.2)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT_S)
        if self in _live:
            _live.remove(self)
        self.log.close()


def server_argv(kind, args, max_c):
    ctx_per_seq = args.input_len + args.output_len + 16
    if kind == "troupe":
        return [args.troupe, "serve", "--model", args.model, "--host", "127.0.0.1", "--port", "{PORT}",
                "--num-threads", str(args.threads)] + args.troupe_args
    # One slot per client, each with room for its prompt and output; continuous batching is the default.
    return [args.llama_server, "-m", args.model, "--host", "127.0.0.1", "--port", "{PORT}", "-t", str(args.threads),
            "-tb", str(args.threads), "-np", str(max_c), "-c", str(max_c * ctx_per_seq)] + args.llama_args


def load_average():
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def run_load(url, args, c):
    n = max(args.min_prompts, args.prompts_per_client * c)
    s = serve_bench.main(["--base-url", url, "--num-prompts", str(n), "--max-concurrency", str(c),
                          "--random-input-len", str(args.input_len), "--random-output-len", str(args.output_len),
                          "--seed", str(args.seed), "--request-timeout", str(args.request_timeout),
                          "--no-cross-check-metrics", "--quiet"])
    if s["failed"]:
        raise RuntimeError(f"{s['failed']} requests failed against {url}: {s['errors']}")
    return {"output_tok_s": s["output_throughput"], "mean_ttft_ms": s["ttft_ms"]["mean"],
            "mean_tpot_ms": s["tpot_ms"]["mean"], "exact_output_lengths": s["exact_output_lengths"],
            "num_prompts": n}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--model", default=llama_cpp_compare.DEFAULT_MODEL)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--troupe", default="build/tools/troupe")
    ap.add_argument("--llama-server", default=None, help="default: built in $LLAMA_CPP_DIR on first use")
    ap.add_argument("--concurrency", default="1,8", help="comma-separated client counts")
    ap.add_argument("--input-len", type=int, default=128)
    ap.add_argument("--output-len", type=int, default=128)
    ap.add_argument("--prompts-per-client", type=int, default=3, help="requests per run = this x concurrency")
    ap.add_argument("--min-prompts", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=2, help="each server runs this many times, alternating")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--request-timeout", type=float, default=300.0)
    ap.add_argument("--troupe-args", default="", help="extra `troupe serve` flags, one string")
    ap.add_argument("--llama-args", default="", help="extra llama-server flags, one string")
    ap.add_argument("--json", metavar="FILE", help="write every run's numbers here")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    args.troupe_args, args.llama_args = shlex.split(args.troupe_args), shlex.split(args.llama_args)
    cs = [int(c) for c in args.concurrency.split(",")]
    if args.llama_server is None:
        args.llama_server = build_llama_server()
    runs = []  # {"server", "round", "c", "load", ...}
    order = ["troupe", "llama.cpp"]
    for r in range(args.rounds):
        for kind in (order if r % 2 == 0 else order[::-1]):
            ready = "/ready" if kind == "troupe" else "/health"
            with Server(kind, server_argv(kind, args, max(cs)), ready) as srv:
                for c in cs:
                    load = load_average()
                    res = run_load(srv.url, args, c)
                    res.update(server=kind, round=r, c=c, load=load)
                    log(f"round {r} {kind:9s} c={c}: {res['output_tok_s']:.1f} output tok/s "
                        f"(TTFT {res['mean_ttft_ms']:.0f} ms, TPOT {res['mean_tpot_ms']:.1f} ms, load {load})")
                    runs.append(res)
    print(f"{os.path.basename(args.model)}, {args.threads} threads, {args.input_len} in / {args.output_len} out, "
          f"output tok/s, median of {args.rounds} rounds (each round's value in brackets)")
    print("| clients | llama-server | troupe serve | ratio |")
    print("|---|---|---|---|")
    for c in cs:
        per = {k: [x["output_tok_s"] for x in runs if x["server"] == k and x["c"] == c] for k in order}
        med = {k: statistics.median(v) for k, v in per.items()}
        cell = lambda k: f"{med[k]:.1f} [{', '.join(f'{v:.1f}' for v in per[k])}]"
        print(f"| {c} | {cell('llama.cpp')} | {cell('troupe')} | {med['troupe'] / med['llama.cpp']:.2f}x |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": {k: v for k, v in vars(args).items()}, "runs": runs}, f, indent=2)
    return runs


if __name__ == "__main__":
    main()
