"""Cluster mode end to end (docs/cluster.md): real worker and router processes on 127.0.0.1 with
distinct ports, the tiny-llama fixture (token-id prompts: it has no tokenizer).

Cluster links are mutual TLS with a CA and certificates made for the run by
tools/make_cluster_certs.sh (plus a rogue self-signed certificate) in a temporary directory; one
test runs plaintext with --cluster-insecure on loopback.

What is asserted: only holders of a certificate of the cluster CA are dialled, join or get a BASP
byte from a worker port, and a raw connection announcing a 1 GiB frame does not move a TLS
worker's RSS (while the same measurement sees the allocation on an insecure worker); requests spread over the workers; a worker killed with SIGKILL mid-stream fails
exactly its own streams with a clear in-band error while the others finish; the router stays
healthy and sends the dead worker nothing; the worker restarted on the same port gets traffic
again; every live worker ends with 0 leased KV blocks and 0 running requests; a worker serving
another model is refused with a clear message; full workers give 429 and no worker 503; and the
same with workers inside network namespaces when run as root.

Every wait is bounded and every process is stopped (SIGKILL at the end if SIGTERM did not do).
"""
import json
import os
import re
import shutil
import signal
import socket
import ssl
import struct
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

pytestmark = pytest.mark.skipif(not os.path.isdir(TINY), reason=f"fixture {TINY} is missing")


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
    CA as well; "insecure" plaintext (loopback only)."""
    c = CERTS
    return {"node": ["--cluster-cert", c["node.pem"], "--cluster-key", c["node.key"], "--cluster-ca", c["ca.pem"]],
            "rogue": ["--cluster-cert", c["rogue.pem"], "--cluster-key", c["rogue.key"], "--cluster-ca", c["rogue.pem"]],
            "rogue-trusting": ["--cluster-cert", c["rogue.pem"], "--cluster-key", c["rogue.key"],
                               "--cluster-ca", c["trusts-both.pem"]],
            "insecure": ["--cluster-insecure", "true"]}[security]


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


# --- the main scenario: spread, SIGKILL mid-stream, rejoin, no leaks ------------------------------

@pytest.fixture(scope="module")
def cluster(nodes):
    slow = ["--fault-inject", "slow_ms=25"]  # ~25 ms per step, so streams are still running when killed
    w1 = nodes(worker_args(0, *slow))
    w2 = nodes(worker_args(0, *slow))
    addrs = [f"127.0.0.1:{w1.cluster_port}", f"127.0.0.1:{w2.cluster_port}"]
    router = nodes(router_args(addrs))
    wait_up(router, addrs)
    return {"workers": [w1, w2], "addrs": addrs, "router": router, "slow": slow}


def test_requests_spread_across_workers(cluster):
    router, addrs = cluster["router"], cluster["addrs"]
    before = cluster_metrics(router.url)
    for _ in range(6):
        r = complete(router.url)
        assert r.status_code == 200, r.text
        assert r.json()["usage"]["completion_tokens"] == 4
    after = cluster_metrics(router.url)
    routed = [after[("troupe:cluster_worker_requests_routed_total", a)] -
              before.get(("troupe:cluster_worker_requests_routed_total", a), 0) for a in addrs]
    assert sum(routed) == 6 and min(routed) >= 2, f"idle workers take turns: {routed}"
    for w in cluster["workers"]:  # each worker really computed them
        text = requests.get(w.url + "/metrics", timeout=10).text
        gen = float(re.search(r"^troupe:generation_tokens_total\{[^}]*\} (\S+)$", text, re.M).group(1))
        assert gen >= 12, f"worker {w.url} generated {gen} tokens"
    assert requests.get(router.url + "/health", timeout=10).status_code == 200
    for n in cluster["workers"] + [router]:  # the default: mutual TLS with the cluster certificate
        assert "cluster links: mutual TLS (certificate /CN=node" in n.log(), n.log()[-2000:]


def test_a_shared_prompt_prefix_sticks_to_one_worker(cluster):
    """Prefix-aware routing: a prompt of 3 full blocks (16 tokens each) sent again goes to the worker
    that has it cached (it is idle, so within the slack), and that worker's prefix cache hits."""
    router, addrs = cluster["router"], cluster["addrs"]
    long_prompt = [(7 * i) % 500 + 3 for i in range(50)]
    key = "troupe:cluster_worker_requests_routed_total"
    before = cluster_metrics(router.url)
    for _ in range(4):
        r = complete(router.url, prompt=long_prompt)
        assert r.status_code == 200, r.text
    after = cluster_metrics(router.url)
    routed = sorted(after[(key, a)] - before[(key, a)] for a in addrs)
    assert routed == [0, 4], f"the same prefix went to one worker: {routed}"
    hits = 0.0
    for w in cluster["workers"]:
        text = requests.get(w.url + "/metrics", timeout=10).text
        hits += float(re.search(r"^troupe:prefix_cache_hits_total\{[^}]*\} (\S+)$", text, re.M).group(1))
    assert hits >= 3 * 48, f"the repeats hit the worker's prefix cache: {hits} tokens"


def test_websocket_and_cancel_through_the_router(cluster):
    """The WebSocket API runs unchanged over the router; a cancel reaches the remote scheduler."""
    import asyncio
    from websockets.asyncio.client import connect

    async def run():
        url = cluster["router"].url.replace("http://", "ws://") + "/v1/ws"
        async with connect(url, open_timeout=10, close_timeout=5) as ws:
            await ws.send(json.dumps({"type": "generate", "id": "long", "prompt": PROMPT, "max_tokens": 400,
                                      "ignore_eos": True}))
            await ws.send(json.dumps({"type": "generate", "id": "short", "prompt": PROMPT, "max_tokens": 6,
                                      "ignore_eos": True}))
            done, n_long, cancelled = {}, 0, False
            deadline = time.monotonic() + 60
            while len(done) < 2:
                assert time.monotonic() < deadline, f"missing done frames: {done}"
                f = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if f["type"] == "token" and f["id"] == "long":
                    n_long += 1
                    if n_long >= 3 and not cancelled:
                        await ws.send(json.dumps({"type": "cancel", "id": "long"}))
                        cancelled = True
                elif f["type"] == "done":
                    done[f["id"]] = f
                elif f["type"] != "token":
                    raise AssertionError(f"unexpected frame: {f}")
            return done

    done = asyncio.run(run())
    assert done["short"]["finish_reason"] == "length"
    assert done["short"]["usage"]["completion_tokens"] == 6
    assert done["long"]["finish_reason"] == "abort"
    assert 3 <= done["long"]["usage"]["completion_tokens"] < 400
    for w in cluster["workers"]:
        assert_worker_idle(w)


def test_sigkill_mid_stream_fails_only_that_workers_requests(cluster):
    router, addrs = cluster["router"], cluster["addrs"]
    victim, survivor = cluster["workers"]
    wait_until(lambda: all(cluster_metrics(router.url)[("troupe:cluster_worker_requests_running", a)] == 0
                           for a in addrs), 15, "both workers idle")
    streams = [Stream(router.url, max_tokens=120) for _ in range(6)]
    for s in streams:
        s.start()
    for s in streams:
        assert s.started.wait(30), "a stream did not start"
    m = cluster_metrics(router.url)
    on_victim = int(m[("troupe:cluster_worker_requests_in_flight", addrs[0])])
    assert on_victim == 3 and m[("troupe:cluster_worker_requests_in_flight", addrs[1])] == 3, m
    lost_before = m[("troupe:cluster_worker_requests_lost_total", addrs[0])]
    killed_at = time.monotonic()
    victim.kill()
    for s in streams:
        s.join(60)
        assert not s.is_alive(), "a stream never ended"
    failed = [s for s in streams if s.error]
    done = [s for s in streams if not s.error]
    assert len(failed) == 3, [(s.finish, s.error) for s in streams]
    for s in failed:
        assert s.status == 200 and s.chunks < 120, "the failure came mid-stream, in-band"
        assert s.error["code"] == "unavailable", s.error
        assert addrs[0] in s.error["message"] and "went away" in s.error["message"], s.error
    for s in done:
        assert s.finish == "length" and s.chunks == 120, (s.finish, s.chunks)
    # The failures were immediate (the dropped connection fires the monitors), not a timeout.
    assert all(s.ended - killed_at < 5 for s in failed), [s.ended - killed_at for s in failed]
    m = cluster_metrics(router.url)
    assert m[("troupe:cluster_worker_up", addrs[0])] == 0
    assert m[("troupe:cluster_worker_state", addrs[0])][0] in ("down", "connecting")
    assert m[("troupe:cluster_worker_requests_lost_total", addrs[0])] - lost_before == 3
    assert requests.get(router.url + "/health", timeout=10).status_code == 200, "one worker is still up"
    routed_victim = m[("troupe:cluster_worker_requests_routed_total", addrs[0])]
    for _ in range(4):  # all traffic goes to the survivor now
        r = complete(router.url)
        assert r.status_code == 200, r.text
    m = cluster_metrics(router.url)
    assert m[("troupe:cluster_worker_requests_routed_total", addrs[0])] == routed_victim
    assert_worker_idle(survivor)


def test_restarted_worker_receives_traffic_again(cluster, nodes):
    router, addrs = cluster["router"], cluster["addrs"]
    old = cluster["workers"][0]
    assert old.proc.poll() is not None, "runs after the SIGKILL test"
    port = int(addrs[0].rsplit(":", 1)[1])
    new = nodes(worker_args(port, *cluster["slow"]))
    cluster["workers"][0] = new
    wait_up(router, addrs, rejoined=[addrs[0]])
    before = cluster_metrics(router.url)[("troupe:cluster_worker_requests_routed_total", addrs[0])]
    for _ in range(4):
        r = complete(router.url)
        assert r.status_code == 200, r.text
    after = cluster_metrics(router.url)[("troupe:cluster_worker_requests_routed_total", addrs[0])]
    assert after - before >= 2, "the rejoined (idle) worker takes its share"
    for w in cluster["workers"]:
        assert_worker_idle(w)


def test_router_killed_mid_stream_leaks_nothing_and_a_new_router_finds_the_workers(cluster, nodes):
    addrs = cluster["addrs"]
    streams = [Stream(cluster["router"].url, max_tokens=200) for _ in range(4)]
    for s in streams:
        s.start()
    for s in streams:
        assert s.started.wait(30)
    cluster["router"].kill()  # its sinks vanish: the workers' schedulers cancel their requests
    for s in streams:
        s.join(60)
        assert s.error, "the client saw the router die"
    for w in cluster["workers"]:
        assert_worker_idle(w)
    router = nodes(router_args(addrs))
    cluster["router"] = router
    wait_up(router, addrs)
    r = complete(router.url)
    assert r.status_code == 200, r.text
    for w in cluster["workers"]:
        assert_worker_idle(w)


# --- limits, absence and refusal -----------------------------------------------------------------

def test_full_workers_answer_429_and_no_worker_503(nodes):
    """Also the plaintext path: every node on loopback with --cluster-insecure."""
    limits = ["--max-concurrent-requests", "1", "--max-queued-requests", "0", "--fault-inject", "slow_ms=25"]
    ws = [nodes(worker_args(0, *limits, security="insecure")) for _ in range(2)]
    assert all("cluster links: INSECURE" in w.log() for w in ws)
    addrs = [f"127.0.0.1:{w.cluster_port}" for w in ws]
    router = nodes(router_args(addrs, security="insecure"))
    wait_up(router, addrs)
    streams = [Stream(router.url, max_tokens=200) for _ in range(2)]
    for s in streams:
        s.start()
    for s in streams:
        assert s.started.wait(30)
    assert all(s.error is None for s in streams), [s.error for s in streams]
    r = complete(router.url)
    assert r.status_code == 429, r.text
    assert "admission limit" in r.json()["error"]["message"]
    assert r.headers.get("Retry-After")
    for w in ws:
        w.kill()
    for s in streams:
        s.join(60)
        assert s.error and s.error["code"] == "unavailable", s.error
    wait_until(lambda: requests.get(router.url + "/health", timeout=10).status_code == 503, 15,
               "/health 503 with no worker up")
    h = requests.get(router.url + "/health", timeout=10).json()
    assert "no worker is up" in h["reason"], h
    r = complete(router.url)
    assert r.status_code == 503, r.text
    assert "no worker is up" in r.json()["error"]["message"], r.text


def test_worker_with_another_model_is_refused(nodes):
    other = nodes(worker_args(0, model=OTHER))
    addr = f"127.0.0.1:{other.cluster_port}"
    router = nodes(router_args([addr]))
    st = wait_until(lambda: cluster_metrics(router.url).get(("troupe:cluster_worker_state", addr), ("", ""))[0]
                    == "refused" and cluster_metrics(router.url)[("troupe:cluster_worker_state", addr)], 30,
                    "the worker refused")
    assert "model mismatch" in st[1] and "--model" in st[1], st
    assert re.search(r"refusing worker .*model mismatch", router.log()), router.log()[-2000:]
    assert requests.get(router.url + "/health", timeout=10).status_code == 503
    r = complete(router.url)
    assert r.status_code == 503 and "refused" in r.json()["error"]["message"], r.text


def test_workers_join_a_router_and_join_its_restart(nodes):
    """--join-port / --join: the router knows no worker address; the worker announces itself, and
    announces itself again to a router restarted on the same join port."""
    join_re = re.compile(r"router accepts joining workers on [^\s:]+:(\d+)")
    rargs = ["--role", "router", "--model", TINY, "--join-port", "0", "--cluster-poll-interval", "0.1"] + SMALL + tls("node")
    router = nodes(rargs)
    join_port = int(router.wait_log(join_re).group(1))
    h = requests.get(router.url + "/health", timeout=10)
    assert h.status_code == 503 and "none has joined yet" in h.json()["reason"], h.text
    w = nodes(worker_args(0, "--join", f"127.0.0.1:{join_port}", "--cluster-reconnect-interval", "0.3"))
    addr = f"127.0.0.1:{w.cluster_port}"
    wait_up(router, [addr])
    assert complete(router.url).status_code == 200
    router.kill()
    rargs[rargs.index("--join-port") + 1] = str(join_port)
    router = nodes(rargs)
    wait_up(router, [addr])
    r = complete(router.url)
    assert r.status_code == 200, r.text
    assert_worker_idle(w)


def test_router_without_workers_is_a_clear_usage_error():
    p = subprocess.run([BINARY, "serve", "--role", "router", "--model", TINY], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode != 0
    assert "--workers" in p.stderr + p.stdout


# --- membership: mutual TLS with the cluster CA ---------------------------------------------------

def serve_exits(args):
    """`troupe serve ARGS` expected to refuse to start: its CompletedProcess (bounded)."""
    return subprocess.run([BINARY, "serve", "--port", "0", "--model", TINY] + SMALL + args, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)


def test_roles_refuse_to_start_without_valid_cluster_credentials():
    """Checked before any port opens or the model loads: exit 2 and the reason."""
    worker = ["--role", "worker", "--cluster-port", "0", "--host", "127.0.0.1"]
    p = serve_exits(worker)
    assert p.returncode == 2 and "--cluster-cert, --cluster-key and --cluster-ca" in p.stderr, p.stderr
    assert "--cluster-insecure" in p.stderr, "names the loopback-only way out"
    p = serve_exits(["--role", "router", "--workers", "127.0.0.1:9"])
    assert p.returncode == 2 and "--cluster-ca" in p.stderr, p.stderr
    p = serve_exits(["--role", "router", "--workers", "127.0.0.1:9,10.0.0.1:9"] + tls("insecure"))
    assert p.returncode == 2 and "'10.0.0.1' is not" in p.stderr and "loopback" in p.stderr, p.stderr
    p = serve_exits(worker + ["--cluster-host", "10.9.9.9"] + tls("insecure"))
    assert p.returncode == 2 and "'10.9.9.9' is not" in p.stderr, p.stderr
    c = CERTS
    p = serve_exits(worker + ["--cluster-cert", c["node.pem"], "--cluster-key", c["rogue.key"], "--cluster-ca", c["ca.pem"]])
    assert p.returncode == 2 and "is not the key of --cluster-cert" in p.stderr, p.stderr
    p = serve_exits(worker + ["--cluster-cert", c["rogue.pem"], "--cluster-key", c["rogue.key"], "--cluster-ca", c["ca.pem"]])
    assert p.returncode == 2 and "does not verify against --cluster-ca" in p.stderr, p.stderr
    assert re.search(r"self[- ]signed", p.stderr), p.stderr


def refused(router, addr):
    """The router shows `addr` as refused: its (state, reason) (bounded wait)."""
    def st():
        s = cluster_metrics(router.url).get(("troupe:cluster_worker_state", addr))
        return s if s and s[0] == "refused" else None
    return wait_until(st, 30, f"worker {addr} refused on the router")


def generated_tokens(node):
    text = requests.get(node.url + "/metrics", timeout=10).text
    return float(re.search(r"^troupe:generation_tokens_total\{[^}]*\} (\S+)$", text, re.M).group(1))


def test_a_worker_without_the_cluster_certificate_is_refused_and_one_with_it_serves(nodes):
    rogue = nodes(worker_args(0, security="rogue"))
    good = nodes(worker_args(0))
    addrs = [f"127.0.0.1:{rogue.cluster_port}", f"127.0.0.1:{good.cluster_port}"]
    router = nodes(router_args(addrs))
    wait_up(router, addrs[1:])
    _, reason = refused(router, addrs[0])
    assert "TLS refused the link: the peer's certificate is not trusted by --cluster-ca" in reason, reason
    assert re.search(r"refusing worker %s: TLS refused the link" % re.escape(addrs[0]), router.log())
    for _ in range(4):
        r = complete(router.url)
        assert r.status_code == 200, r.text
    m = cluster_metrics(router.url)
    key = "troupe:cluster_worker_requests_routed_total"
    assert m[(key, addrs[0])] == 0 and m[(key, addrs[1])] >= 4, m
    assert m[("troupe:cluster_worker_up", addrs[0])] == 0
    assert generated_tokens(rogue) == 0 and generated_tokens(good) >= 16
    assert "a router connected" not in rogue.log(), "the rogue worker never got past TLS"
    assert_worker_idle(good)


def test_a_router_without_the_cluster_certificate_cannot_use_a_worker(nodes):
    """The worker checks the router too: a router with a foreign certificate that itself trusts the
    cluster CA (so only the worker's check can stop it) gets no link."""
    good = nodes(worker_args(0))
    addr = f"127.0.0.1:{good.cluster_port}"
    router = nodes(router_args([addr], security="rogue-trusting"))
    _, reason = refused(router, addr)
    assert "the peer refused this node's certificate" in reason, reason
    r = complete(router.url)
    assert r.status_code == 503, r.text
    assert "a router connected" not in good.log()
    assert generated_tokens(good) == 0


def test_joining_needs_the_cluster_certificate(nodes):
    join_re = re.compile(r"router accepts joining workers on [^\s:]+:(\d+)")
    router = nodes(["--role", "router", "--model", TINY, "--join-port", "0", "--cluster-poll-interval", "0.1"] +
                   SMALL + tls("node"))
    join_port = int(router.wait_log(join_re).group(1))
    join = ["--join", f"127.0.0.1:{join_port}", "--cluster-reconnect-interval", "0.3"]
    rogue = nodes(worker_args(0, *join, security="rogue-trusting"))
    rogue.wait_log(re.compile(r"cannot join the router at 127\.0\.0\.1:%d: TLS refused the link: the peer refused "
                              r"this node's certificate" % join_port))
    h = requests.get(router.url + "/health", timeout=10)
    assert h.status_code == 503 and "none has joined yet" in h.json()["reason"], h.text
    good = nodes(worker_args(0, *join))
    good_addr = f"127.0.0.1:{good.cluster_port}"
    wait_up(router, [good_addr])
    assert complete(router.url).status_code == 200
    listed = {k[1] for k in cluster_metrics(router.url) if isinstance(k, tuple)}
    assert listed == {good_addr}, f"only the member joined: {listed}"
    assert "a router connected" not in rogue.log()


def client_context(security):
    """A TLS client of a worker port: "node" with the member certificate, "rogue" with the rogue
    one, "none" with no certificate (all verify the worker against the cluster CA)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(CERTS["ca.pem"])
    if security != "none":
        ctx.load_cert_chain(CERTS[f"{security}.pem"], CERTS[f"{security}.key"])
    return ctx


def first_read(port, ctx):
    """The first bytes a TLS client reads from a worker port, or the error/EOF that ended it."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        try:
            with ctx.wrap_socket(raw) as s:
                return s.recv(64)
        except (ssl.SSLError, ConnectionError) as e:
            return e


def test_a_tls_worker_port_gives_no_byte_to_peers_without_a_member_certificate(nodes):
    w = nodes(worker_args(0))
    got = first_read(w.cluster_port, client_context("node"))
    assert isinstance(got, bytes) and len(got) > 0, f"a member reads the BASP handshake: {got!r}"
    for who in ("none", "rogue"):
        got = first_read(w.cluster_port, client_context(who))
        assert not isinstance(got, bytes) or got == b"", f"{who}: read {got!r} past the TLS handshake"


def basp_header(payload_len):
    """A CAF 0.17 BASP header (32 bytes, network byte order): client_handshake (operation 1), no
    source or destination actor, announcing `payload_len` bytes of payload. BASP allocates that
    many as soon as it has read the header."""
    return struct.pack(">BBBBIQQQ", 1, 0, 0, 0, payload_len, 0, 0, 0)


def vm_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def send_headers(port, payload_len, n):
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=20)
        s.sendall(basp_header(payload_len))
        socks.append(s)
    return socks


def read_until_closed(s):
    """All bytes the peer sends until it closes (bounded by the socket timeout); None if it did not."""
    got = b""
    try:
        while True:
            d = s.recv(4096)
            if not d:
                return got
            got += d
    except ConnectionResetError:
        return got
    except socket.timeout:
        return None


def test_a_frame_announcing_1_gib_never_reaches_an_allocation_on_a_tls_worker(nodes):
    w = nodes(worker_args(0))
    addr = f"127.0.0.1:{w.cluster_port}"
    router = nodes(router_args([addr]))
    wait_up(router, [addr])
    assert complete(router.url).status_code == 200  # the serving path has run once
    before = vm_rss_kib(w.proc.pid)
    socks = send_headers(w.cluster_port, 1 << 30, 2)
    try:
        for s in socks:  # the worker is done with each connection when it closes it
            got = read_until_closed(s)
            assert got is not None, "the worker kept a connection that sent no TLS handshake"
            assert got == b"" or got[0] == 0x15, f"at most a TLS alert, never BASP: {got[:16]!r}"
    finally:
        for s in socks:
            s.close()
    grown = vm_rss_kib(w.proc.pid) - before
    assert grown < 50 * 1024, f"the worker's RSS grew by {grown} KiB"
    r = complete(router.url)  # and it still serves
    assert r.status_code == 200, r.text
    assert requests.get(w.url + "/health", timeout=10).status_code == 200
    assert_worker_idle(w)


def test_the_same_frame_is_allocated_on_an_insecure_loopback_worker(nodes):
    """The control of the test above: without TLS in front, CAF 0.17's BASP allocates what the header
    announces (why --cluster-insecure is loopback only; docs/cluster.md). 64 MiB here: the
    measurement that stays flat above does see an allocation."""
    w = nodes(worker_args(0, security="insecure"))
    before = vm_rss_kib(w.proc.pid)
    socks = send_headers(w.cluster_port, 64 << 20, 1)
    try:
        wait_until(lambda: vm_rss_kib(w.proc.pid) - before >= 48 * 1024, 30, "the worker's RSS + 48 MiB")
    finally:
        for s in socks:
            s.close()


# --- workers in network namespaces (root only) ----------------------------------------------------

def _netns_usable():
    if os.geteuid() != 0:
        return "not root: network namespaces need root"
    name = f"troupe-probe-{os.getpid()}"
    p = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if p.returncode != 0:
        return f"`ip netns add` failed: {p.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return None


class Netns:
    """A namespace joined to the host by a veth pair: host 10.231.<i>.1, namespace 10.231.<i>.2."""

    def __init__(self, i):
        self.name = f"troupe-w{i}-{os.getpid()}"
        self.host_if, self.ns_if = f"trh{i}-{os.getpid() % 10000}", f"trn{i}-{os.getpid() % 10000}"
        self.host_ip, self.ns_ip = f"10.231.{i}.1", f"10.231.{i}.2"
        cmds = [["ip", "netns", "add", self.name],
                ["ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if],
                ["ip", "link", "set", self.ns_if, "netns", self.name],
                ["ip", "addr", "add", self.host_ip + "/24", "dev", self.host_if],
                ["ip", "link", "set", self.host_if, "up"],
                ["ip", "netns", "exec", self.name, "ip", "addr", "add", self.ns_ip + "/24", "dev", self.ns_if],
                ["ip", "netns", "exec", self.name, "ip", "link", "set", self.ns_if, "up"],
                ["ip", "netns", "exec", self.name, "ip", "link", "set", "lo", "up"]]
        for c in cmds:
            subprocess.run(c, check=True, capture_output=True, timeout=10)

    def prefix(self):
        return ["ip", "netns", "exec", self.name]

    def close(self):
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True, timeout=10)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=10)


def test_workers_in_network_namespaces(nodes):
    why = _netns_usable()
    if why:
        pytest.skip(f"network-namespace test skipped: {why}")
    spaces = []
    try:
        for i in (1, 2):
            spaces.append(Netns(i))
        ws = [nodes(worker_args(0, "--fault-inject", "slow_ms=25", host=ns.ns_ip), prefix=ns.prefix())
              for ns in spaces]
        addrs = [f"{ns.ns_ip}:{w.cluster_port}" for ns, w in zip(spaces, ws)]
        router = nodes(router_args(addrs))
        wait_up(router, addrs)
        streams = [Stream(router.url, max_tokens=120) for _ in range(4)]
        for s in streams:
            s.start()
        for s in streams:
            assert s.started.wait(30)
        ws[0].kill()  # the process inside the namespace; the namespace's link stays
        for s in streams:
            s.join(60)
        failed = [s for s in streams if s.error]
        assert len(failed) == 2, [(s.finish, s.error) for s in streams]
        assert all(addrs[0] in s.error["message"] for s in failed), [s.error for s in failed]
        assert all(s.finish == "length" for s in streams if not s.error)
        r = complete(router.url)
        assert r.status_code == 200, r.text
        restarted = nodes(worker_args(ws[0].cluster_port, "--fault-inject", "slow_ms=25", host=spaces[0].ns_ip),
                          prefix=spaces[0].prefix())
        wait_up(router, addrs, rejoined=[addrs[0]])
        for _ in range(4):
            assert complete(router.url).status_code == 200
        m = cluster_metrics(router.url)
        assert m[("troupe:cluster_worker_connects_total", addrs[0])] == 2
        for w in (restarted, ws[1]):
            assert_worker_idle(w)
        for w in (restarted, ws[1]):
            w.stop()
    finally:
        for ns in spaces:
            ns.close()


def test_router_benchmark_runs_and_reports(tmp_path):
    """bench/router_bench.py (a short run): both paths answer, and it reports the router's added
    latency per token and its CPU cost per token."""
    import sys
    out = tmp_path / "bench.json"
    bench = os.path.join(HERE, "..", "..", "bench", "router_bench.py")
    p = subprocess.run([sys.executable, bench, "--binary", BINARY, "--model", TINY, "--seconds", "1",
                        "--latency-requests", "3", "--concurrency", "4", "--tokens", "16", "--json", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "router adds" in p.stdout and "us per token" in p.stdout, p.stdout
    res = json.loads(out.read_text())
    for name in ("direct", "router"):
        assert res[name]["throughput"]["errors"] == 0
        assert res[name]["throughput"]["tokens_per_s"] > 0
        assert res[name]["latency"]["itl_ms_mean"] > 0
    assert res["router_cpu_us_per_token"] > 0
