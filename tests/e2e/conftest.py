"""Fixtures for the end-to-end tests: start the real `troupe serve` binary on a free port, wait for
/ready, and always stop it (SIGTERM, then SIGKILL after a bound), checking a clean exit.

Every wait here is bounded. Servers are kept small (512 KV blocks, session_len 2048, one compute
thread) because these tests share two cores with the rest of ctest.
"""
import atexit
import os
import re
import shlex
import signal
import subprocess
import tempfile
import threading
import time

import pytest
import requests

BINARY = os.environ.get("TROUPE_BINARY", "")
SMALL_FLAGS = ["--cache-max-entry-count", "512", "--session-len", "2048", "--num-threads", "1",
               "--drain-timeout", "5"]
# Extra `serve` flags for every server these tests start, e.g. TROUPE_E2E_SERVER_ARGS="--device cuda"
# to run the listener's end-to-end tests against the CUDA executor; a test's own flags win.
EXTRA_FLAGS = shlex.split(os.environ.get("TROUPE_E2E_SERVER_ARGS", ""))
START_TIMEOUT_S = 60.0   # model load + plan on a loaded 2-core machine
STOP_TIMEOUT_S = 20.0    # SIGTERM -> exit: drain-timeout (5 s) plus slack
_LISTEN_RE = re.compile(r"listening on http://[^\s:]+:(\d+)")
# Under tools/sanitize.sh: gcc's combined ASan+UBSan runtime prints UBSan's reports to stderr, not
# to log_path, so a server log holding any sanitizer report is copied into the script's reports
# folder, which fails the run even where the test itself killed the server on purpose.
SANITIZER_REPORTS = os.environ.get("TROUPE_SANITIZER_REPORTS", "")
_REPORT_RE = re.compile(r"runtime error:|ERROR: AddressSanitizer|ERROR: LeakSanitizer|"
                        r"WARNING: ThreadSanitizer")


_live = []  # every server started by this process, stopped at exit whatever happened


@atexit.register
def _stop_leftovers():
    for srv in _live:
        if srv.proc.poll() is None:
            srv.proc.kill()
            srv.proc.wait(timeout=STOP_TIMEOUT_S)


class ServerProcess:
    """A running `troupe serve`. `url` is http://127.0.0.1:PORT (no trailing slash)."""

    def __init__(self, args):
        if not BINARY or not os.path.exists(BINARY):
            raise RuntimeError(f"TROUPE_BINARY={BINARY!r} is not a file: set it to the troupe binary")
        self.args = [BINARY, "serve", "--port", "0"] + list(args)
        self._log = tempfile.NamedTemporaryFile(prefix="troupe-e2e-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(self.args, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        self.port = None
        self.url = None
        self.returncode = None
        _live.append(self)

    def log(self):
        with open(self._log.name, "r", errors="replace") as f:
            return f.read()

    def wait_ready(self, timeout=START_TIMEOUT_S):
        deadline = time.monotonic() + timeout
        while self.port is None:
            if self.proc.poll() is not None:
                raise RuntimeError(f"troupe serve exited with {self.proc.returncode}:\n{self.log()}")
            m = _LISTEN_RE.search(self.log())
            if m:
                self.port = int(m.group(1))
                self.url = f"http://127.0.0.1:{self.port}"
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"no 'listening on' line within {timeout} s:\n{self.log()}")
            time.sleep(0.05)
        while True:
            try:
                if requests.get(self.url + "/ready", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"troupe serve exited with {self.proc.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"/ready not 200 within {timeout} s:\n{self.log()}")
            time.sleep(0.1)

    def stop(self):
        """SIGTERM, wait a bounded time, SIGKILL if needed. Returns the exit code (negative: signal)."""
        if self.returncode is not None:
            return self.returncode
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT_S)
        self.returncode = self.proc.returncode
        self._log.close()
        if SANITIZER_REPORTS:
            log = self.log()
            if _REPORT_RE.search(log):
                with open(os.path.join(SANITIZER_REPORTS, f"server-{self.proc.pid}.log"), "w") as f:
                    f.write(f"{shlex.join(self.args)}\n{log}")
        return self.returncode

    def cleanup(self):
        self.stop()
        try:
            os.unlink(self._log.name)
        except OSError:
            pass


def merge_flags(defaults, flags):
    """defaults + flags, dropping a default whose flag `flags` names (the CLI takes each once)."""
    named = {f for f in flags if f.startswith("--")}
    out = []
    for i in range(0, len(defaults), 2):
        if defaults[i] not in named:
            out += defaults[i:i + 2]
    return out + list(flags)


def start_server(*flags, small=True):
    """Start `troupe serve --port 0 [small flags] flags...` and wait until /ready answers 200.
    A flag given here replaces the small default of the same name."""
    srv = ServerProcess(merge_flags((SMALL_FLAGS if small else []) + EXTRA_FLAGS, flags))
    try:
        return srv.wait_ready()
    except BaseException:
        srv.stop()
        raise


def stop_server_checked(srv):
    """Stop `srv` and assert it exited 0 after SIGTERM (a SIGKILL shows up as -9)."""
    code = srv.stop()
    log = srv.log()
    srv.cleanup()
    assert code == 0, f"troupe serve exited with {code} after SIGTERM; log tail:\n{log[-4000:]}"


@pytest.fixture(scope="module")
def server_factory():
    """Call it with extra flags to get a ready server; every server is stopped (and checked for a
    clean exit) when the module's tests are done."""
    started = []

    def make(*flags, small=True):
        srv = start_server(*flags, small=small)
        started.append(srv)
        return srv

    yield make
    failures = []
    for srv in started:
        try:
            stop_server_checked(srv)
        except AssertionError as e:
            failures.append(str(e))
    assert not failures, "\n".join(failures)


@pytest.fixture(scope="module")
def server(server_factory):
    """A default small server for the module."""
    return server_factory()


@pytest.fixture(scope="module")
def base_url(server):
    return server.url


# -- helpers shared by the tests ----------------------------------------------------------------

def metrics(url, timeout=10):
    """Parse /metrics into {name: value} for the unlabelled-but-model_name samples."""
    r = requests.get(url + "/metrics", timeout=timeout)
    r.raise_for_status()
    out = {}
    for line in r.text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$", line)
        if not m:
            continue
        name, labels, value = m.groups()
        labels = labels or ""
        # keep per-name first sample, plus a labelled key for those with more labels
        key = name if "," not in labels else name + labels
        out.setdefault(key, float(value))
    return out


def wait_idle(url, timeout=15.0, need_zero=("troupe:num_requests_running", "troupe:num_requests_waiting",
                                            "troupe:kv_blocks_used")):
    """Poll /metrics until every gauge in need_zero is 0; return the last sample (bounded)."""
    deadline = time.monotonic() + timeout
    last = {}
    while True:
        last = metrics(url)
        if all(last.get(k, -1) == 0 for k in need_zero):
            return last
        if time.monotonic() > deadline:
            return last
        time.sleep(0.2)


class Sampler(threading.Thread):
    """Samples a /metrics gauge every `period` seconds until stop() (for max-over-time checks)."""

    def __init__(self, url, name, period=0.1):
        super().__init__(daemon=True)
        self.url, self.name, self.period = url, name, period
        self.values = []
        self.errors = 0
        self._stop_evt = threading.Event()

    def run(self):
        while not self._stop_evt.is_set():
            try:
                self.values.append(metrics(self.url, timeout=5).get(self.name))
            except Exception:  # noqa: BLE001 - a sample lost under load is not a test failure
                self.errors += 1
            self._stop_evt.wait(self.period)

    def stop(self):
        self._stop_evt.set()
        self.join(timeout=10)
