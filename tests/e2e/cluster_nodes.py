"""Cluster-mode test support (tests/e2e/test_cluster*.py): `troupe serve` nodes as real
processes on 127.0.0.1, the cluster credentials made per test module (tools/make_cluster_certs.sh
and a rogue self-signed certificate, in a temporary directory removed afterwards), the nodes'
arguments, the router's per-worker metrics, streaming clients and bounded waits.

Every wait is bounded and every process is stopped (SIGKILL at the end if SIGTERM did not do).
"""
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import pytest
import requests

BINARY = os.environ.get("TROUPE_BINARY", "")
HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.normpath(os.path.join(HERE, "..", "..", "..", "shared", "fixtures"))
TINY = os.path.join(FIXTURES, "tiny-llama")
OTHER = os.path.join(FIXTURES, "tiny-qwen2")
MAKE_CERTS = os.path.join(HERE, "..", "..", "tools", "make_cluster_certs.sh")
CERTS = {}  # file paths, filled by the module's `certs` fixture
SMALL = ["--cache-max-entry-count", "256", "--session-len", "512", "--num-threads", "1",
         "--drain-timeout", "3", "--cache-block-seq-len", "16", "--max-prefill-token-num", "256"]
START_TIMEOUT_S = 60.0
_LISTEN_RE = re.compile(r"listening on http://([^\s:]+):(\d+)")
_PUBLISHED_RE = re.compile(r"worker published on ([^\s:]+):(\d+)")
PROMPT = [1, 5, 9, 14, 3, 7, 22, 41]



class Node:
    """One `troupe serve` process (worker or router); `prefix` runs it elsewhere (ip netns exec)."""

    def __init__(self, args, prefix=()):
        if not BINARY or not os.path.exists(BINARY):
            raise RuntimeError(f"TROUPE_BINARY={BINARY!r} is not a file")
        self.args = list(prefix) + [BINARY, "serve", "--port", "0"] + list(args)
        self._log = tempfile.NamedTemporaryFile(prefix="troupe-cluster-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(self.args, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        self.url = None
        self.cluster_port = None

    def log(self):
        with open(self._log.name, "r", errors="replace") as f:
            return f.read()

    def wait_log(self, regex, timeout=START_TIMEOUT_S):
        deadline = time.monotonic() + timeout
        while True:
            m = regex.search(self.log())
            if m:
                return m
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.args} exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"no {regex.pattern!r} within {timeout} s:\n{self.log()[-4000:]}")
            time.sleep(0.05)

    def wait_ready(self):
        host, port = self.wait_log(_LISTEN_RE).groups()
        self.url = f"http://{host}:{port}"
        if "--role" in self.args and self.args[self.args.index("--role") + 1] == "worker":
            self.cluster_port = int(self.wait_log(_PUBLISHED_RE).group(2))
        return self

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=20)

    def stop(self):
        """SIGTERM, bounded wait, SIGKILL. Returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)
        return self.proc.returncode


@pytest.fixture(scope="module", autouse=True)
def certs():
    """The cluster CA and a node certificate (tools/make_cluster_certs.sh), a rogue self-signed
    certificate, and a CA bundle that trusts both (for a rogue node that trusts the cluster, so
    only the other side's check can stop it); made per run, removed after it."""
    d = tempfile.mkdtemp(prefix="troupe-cluster-certs-")
    try:
        subprocess.run(["bash", MAKE_CERTS, d, "node"], check=True, capture_output=True, timeout=60)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-sha256", "-days", "2", "-subj", "/CN=rogue", "-keyout", f"{d}/rogue.key",
                        "-out", f"{d}/rogue.pem"], check=True, capture_output=True, timeout=60)
        with open(f"{d}/trusts-both.pem", "w") as out:
            for name in ("ca.pem", "rogue.pem"):
                with open(f"{d}/{name}") as f:
                    out.write(f.read())
        CERTS.update({n: f"{d}/{n}" for n in ("ca.pem", "node.pem", "node.key", "rogue.pem", "rogue.key",
                                              "trusts-both.pem")})
        yield CERTS
    finally:
        CERTS.clear()
        shutil.rmtree(d, ignore_errors=True)


def tls(security):
    """A node's cluster-link options: "node" a member of the cluster CA; "rogue" a self-signed
    certificate that trusts only itself; "rogue-trusting" the same certificate trusting the cluster
    CA as well; "insecure" plaintext (loopback only); None: none (the caller gives them)."""
    c = CERTS
    return {"node": ["--cluster-cert", c["node.pem"], "--cluster-key", c["node.key"], "--cluster-ca", c["ca.pem"]],
            "rogue": ["--cluster-cert", c["rogue.pem"], "--cluster-key", c["rogue.key"], "--cluster-ca", c["rogue.pem"]],
            "rogue-trusting": ["--cluster-cert", c["rogue.pem"], "--cluster-key", c["rogue.key"],
                               "--cluster-ca", c["trusts-both.pem"]],
            "insecure": ["--cluster-insecure", "true"], None: []}[security]


@pytest.fixture(scope="module")
def nodes():
    """start(args, prefix=()) -> a ready Node; all are stopped (and must exit cleanly) at the end."""
    started = []

    def start(args, prefix=()):
        n = Node(args, prefix)
        started.append(n)
        return n.wait_ready()

    yield start
    bad = []
    for n in started:
        killed = n.proc.poll() is not None and n.proc.returncode == -signal.SIGKILL
        code = n.stop()
        if not killed and code != 0:
            bad.append(f"{n.args} exited with {code}:\n{n.log()[-3000:]}")
    for n in started:
        try:
            os.unlink(n._log.name)
        except OSError:
            pass
    assert not bad, "\n".join(bad)


def worker_args(port=0, *extra, model=TINY, host="127.0.0.1", security="node"):
    return (["--role", "worker", "--model", model, "--cluster-port", str(port), "--host", host] + SMALL +
            tls(security) + list(extra))


def router_args(workers, *extra, security="node"):
    return (["--role", "router", "--model", TINY, "--workers", ",".join(workers),
             "--cluster-reconnect-interval", "0.3", "--cluster-poll-interval", "0.1"] + SMALL + tls(security) +
            list(extra))


def cluster_metrics(url):
    """{(name, worker): value} of the router's per-worker samples, plus {name: value} of the rest."""
    text = requests.get(url + "/metrics", timeout=10).text
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)$', line)
        if not m:
            continue
        name, labels, value = m.groups()
        w = re.search(r'worker="([^"]*)"', labels or "")
        if name == "troupe:cluster_worker_state":
            st = re.search(r'state="([^"]*)"', labels).group(1)
            reason = re.search(r'reason="((?:[^"\\]|\\.)*)"', labels).group(1)
            out[(name, w.group(1))] = (st, reason)
        elif w:
            out[(name, w.group(1))] = float(value)
        else:
            out.setdefault(name, float(value))
    return out


def wait_until(cond, timeout, what):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = cond()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


def wait_up(router, addrs, rejoined=(), timeout=30):
    """Every worker of `addrs` up on the router; those of `rejoined` connected a second time."""
    def ok():
        m = cluster_metrics(router.url)
        return all(m.get(("troupe:cluster_worker_up", a)) == 1 and
                   m.get(("troupe:cluster_worker_connects_total", a), 0) >= (2 if a in rejoined else 1)
                   for a in addrs) and m
    return wait_until(ok, timeout, f"workers {addrs} up on the router")


def complete(url, max_tokens=4, **extra):
    body = {"prompt": PROMPT, "max_tokens": max_tokens, "ignore_eos": True, "temperature": 0, **extra}
    return requests.post(url + "/v1/completions", json=body, timeout=60)


class Stream(threading.Thread):
    """One SSE completion read to its end: counts token chunks, keeps a finish reason or an error."""

    def __init__(self, url, max_tokens):
        super().__init__(daemon=True)
        self.url, self.max_tokens = url, max_tokens
        self.chunks = 0
        self.finish = None
        self.error = None
        self.status = None
        self.started = threading.Event()
        self.ended = None

    def run(self):
        body = {"prompt": PROMPT, "max_tokens": self.max_tokens, "ignore_eos": True, "stream": True}
        try:
            with requests.post(self.url + "/v1/completions", json=body, stream=True, timeout=60) as r:
                self.status = r.status_code
                if r.status_code != 200:
                    self.error = r.text
                    return
                for line in r.iter_lines():
                    if not line.startswith(b"data: ") or line == b"data: [DONE]":
                        continue
                    d = json.loads(line[6:])
                    if "error" in d:
                        self.error = d["error"]
                        continue
                    self.chunks += 1
                    if self.chunks >= 2:
                        self.started.set()
                    fr = d["choices"][0].get("finish_reason")
                    if fr:
                        self.finish = fr
        except Exception as e:  # noqa: BLE001 - reported by the test's assertions
            self.error = f"client exception: {e!r}"
        finally:
            self.ended = time.monotonic()
            self.started.set()


def assert_worker_idle(worker, timeout=15):
    """No leased KV block and nothing running or waiting on the worker (bounded wait)."""
    def idle():
        text = requests.get(worker.url + "/metrics", timeout=10).text
        vals = {}
        for k in ("troupe:kv_blocks_used", "troupe:num_requests_running", "troupe:num_requests_waiting"):
            m = re.search(r"^" + re.escape(k) + r"\{[^}]*\} (\S+)$", text, re.M)
            vals[k] = float(m.group(1)) if m else None
        return vals if all(v == 0 for v in vals.values()) else None
    wait_until(idle, timeout, f"worker {worker.url} idle with 0 KV blocks leased")


def generated_tokens(node):
    text = requests.get(node.url + "/metrics", timeout=10).text
    return float(re.search(r"^troupe:generation_tokens_total\{[^}]*\} (\S+)$", text, re.M).group(1))
