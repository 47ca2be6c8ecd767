"""Fixtures: one nhc-devserver per test session, reset before every test.

The server binary comes from $NHC_DEVSERVER, else target/release, else
target/debug. It prints one JSON line with its URLs and PKI paths, then
serves until terminated; its HTTP control API scripts it (see `Control`).
"""

import base64
import json
import logging
import os
import queue
import subprocess
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest

import nerves_hub_channel as nhc

ROOT = Path(__file__).resolve().parents[2]
WAIT = 10.0
"""Seconds any test waits for something that should happen (never a sleep)."""


def devserver_binary() -> Path:
    env = os.environ.get("NHC_DEVSERVER")
    if env:
        return Path(env)
    for profile in ("release", "debug"):
        candidate = ROOT / "target" / profile / "nhc-devserver"
        if candidate.exists():
            return candidate
    pytest.exit("nhc-devserver not found: build it (cargo build --release -p nhc-devserver) "
                "or set NHC_DEVSERVER", returncode=2)


class Control:
    """Client of the dev server's HTTP control API."""

    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")

    def call(self, path: str, body: Optional[Dict[str, Any]] = None, expect: int = 200) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method="GET" if body is None else "POST")
        req.add_header("content-type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=WAIT + 20) as resp:
                status, text = resp.status, resp.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode()
        if status != expect:
            raise AssertionError(f"control {path} answered {status}: {text}")
        return json.loads(text) if text else None

    def push(self, topic: str, event: str, payload: Any = None, binary: Optional[bytes] = None) -> int:
        body: Dict[str, Any] = {"topic": topic, "event": event}
        if binary is not None:
            body["binary_base64"] = base64.b64encode(binary).decode()
        elif payload is not None:
            body["payload"] = payload
        return int(self.call("/push", body)["delivered"])

    def upload_file(self, filename: str, content: bytes) -> int:
        """A browser upload to every joined console (start, chunks, stop)."""
        body = {"filename": filename, "content_base64": base64.b64encode(content).decode()}
        return int(self.call("/upload_file", body)["delivered"])

    def broadcast(self, topic: str, event: str, payload: Any = None) -> int:
        body: Dict[str, Any] = {"topic": topic, "event": event}
        if payload is not None:
            body["payload"] = payload
        return int(self.call("/broadcast", body)["delivered"])

    def received(self) -> List[Dict[str, Any]]:
        return list(self.call("/received"))

    def wait(self, topic: str, event: str, count: int = 1, timeout: float = WAIT) -> List[Dict[str, Any]]:
        """The first `count` messages `event` on `topic` the server received."""
        body = {"topic": topic, "event": event, "count": count, "timeout_ms": int(timeout * 1000)}
        return list(self.call("/wait", body))

    def wait_joined(self, topic: str, count: int = 1, timeout: float = WAIT) -> None:
        self.call("/wait_joined", {"topic": topic, "count": count, "timeout_ms": int(timeout * 1000)})

    def crash(self, topic: str) -> int:
        return int(self.call("/crash", {"topic": topic})["delivered"])

    def close(self, topic: str) -> int:
        return int(self.call("/close", {"topic": topic})["delivered"])

    def drop(self) -> int:
        return int(self.call("/drop", {})["delivered"])

    def close_connections(self, code: int = 1000) -> int:
        return int(self.call("/close_connections", {"code": code})["delivered"])

    def heartbeats(self, answer: bool) -> None:
        self.call("/heartbeats", {"answer": answer})

    def raw(self, text: str) -> int:
        return int(self.call("/raw", {"text": text})["delivered"])

    def join_reply(self, topic: str, status: str, response: Any = None) -> None:
        body: Dict[str, Any] = {"topic": topic, "status": status}
        if response is not None:
            body["response"] = response
        self.call("/join_reply", body)

    def connections(self) -> List[Dict[str, Any]]:
        return list(self.call("/connections"))

    def reset(self) -> None:
        self.call("/reset", {})


TEST_PRODUCT_KEY = "nhp_nhc_tests"
TEST_PRODUCT_SECRET = "nhc-tests-product-secret"
"""The NH1 product key the session's dev server accepts (see DevServer.device_auth)."""


class DevServer:
    """A running nhc-devserver: its URLs, PKI paths and control client."""

    def __init__(self, info: Dict[str, str]) -> None:
        self.ws_url = info["ws_url"]
        self.device_socket_url = info["device_socket_url"]
        self.wss_url = info["wss_url"]
        self.ca = info["ca"]
        self.device_cert = info["device_cert"]
        self.device_key = info["device_key"]
        self.pki_dir = info["pki_dir"]
        self.control = Control(info["control_url"])

    def device_auth(self, identifier: str) -> Dict[str, Any]:
        """Device options for an authenticated NH1 connection as `identifier`,
        as NervesHub requires for `device`, `console` and `extensions`. Give
        every device of a test its own identifier: the server closes the
        older socket of a duplicate identity."""
        return dict(
            url=self.device_socket_url,
            shared_secret=(TEST_PRODUCT_KEY, TEST_PRODUCT_SECRET, identifier),
        )


def fwup_binary() -> Optional[Path]:
    """The real fwup: $NHC_FWUP (scripts/test.sh sets it), else the one
    scripts/setup.sh built into target/tools/fwup; None if neither exists."""
    env = os.environ.get("NHC_FWUP")
    candidate = Path(env) if env else ROOT / "target" / "tools" / "fwup" / "bin" / "fwup"
    return candidate if candidate.is_file() else None


@pytest.fixture(scope="session")
def devserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    binary = devserver_binary()
    pki = tmp_path_factory.mktemp("pki")
    env = {**os.environ, "NHC_LOG": os.environ.get("NHC_LOG", "warn")}
    fwup = fwup_binary()
    if fwup is not None:
        env["NHC_FWUP"] = str(fwup)  # the server reads .fw metadata with it
    proc = subprocess.Popen(
        [str(binary), "--pki-dir", str(pki), "--shared-secret", f"{TEST_PRODUCT_KEY}:{TEST_PRODUCT_SECRET}"],
        stdout=subprocess.PIPE,
        stderr=None,
        text=True,
        env=env,
    )
    lines: "queue.Queue[str]" = queue.Queue()
    assert proc.stdout is not None
    stdout = proc.stdout
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        line = lines.get(timeout=60)
    except queue.Empty:
        proc.kill()
        raise RuntimeError("nhc-devserver printed no ready line within 60 s")
    if not line:
        raise RuntimeError(f"nhc-devserver exited with {proc.wait()} before its ready line")
    try:
        yield DevServer(json.loads(line))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def server(devserver: DevServer) -> DevServer:
    """The session's dev server, reset to its initial behaviour."""
    devserver.control.reset()
    return devserver


FAST: Dict[str, Any] = dict(backoff_initial=0.01, backoff_max=0.1, backoff_jitter=0.5, rejoin_after=0.02)
"""Socket options that reconnect and rejoin quickly, for tests."""


def connected(server: DevServer, **options: Any) -> Iterator[nhc.Socket]:
    """A socket on the server's ws URL, connected, closed after the test."""
    s = nhc.Socket(server.ws_url, **FAST, **options)
    s.connect()
    s.wait_connected(timeout=WAIT)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def sock(server: DevServer) -> Iterator[nhc.Socket]:
    """A threaded socket, connected."""
    yield from connected(server)


@pytest.fixture(params=["threaded", "inline"])
def delivering(server: DevServer, request: pytest.FixtureRequest) -> Iterator[nhc.Socket]:
    """A connected socket, once threaded and once inline: for what callbacks
    may count on wherever they run."""
    yield from connected(server, delivery=request.param)


class LogRecords(logging.Handler):
    """Collects the library's log records into a queue (from any thread)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: "queue.Queue[logging.LogRecord]" = queue.Queue()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.put(record)

    def wait_for(self, text: str, timeout: float = WAIT) -> logging.LogRecord:
        seen: List[str] = []
        while True:
            try:
                record = self.records.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no log record containing {text!r}; saw {seen}")
            message = record.getMessage()
            if text in message or (record.exc_info and text in str(record.exc_info[1])):
                return record
            seen.append(message)


@pytest.fixture
def log_records() -> Iterator[LogRecords]:
    handler = LogRecords()
    logger = logging.getLogger("nerves_hub_channel")
    old = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)


def get(q: "queue.Queue[Any]", timeout: float = WAIT) -> Any:
    """The next item of `q`, failing the test after `timeout` seconds."""
    try:
        return q.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError(f"nothing arrived within {timeout} s") from None
