"""Blocking waits release the GIL, Ctrl-C interrupts them, Rust logs reach logging."""

import logging
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

import nerves_hub_channel as nhc
from conftest import WAIT, DevServer, LogRecords


@pytest.fixture
def ctrl_c() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt, even when the suite was started with
    SIGINT ignored (a background job of a non-interactive shell), where
    Python installs no handler and a test waiting for the interrupt would
    wait forever."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield None
    signal.signal(signal.SIGINT, previous)


def test_other_threads_run_during_a_blocking_wait(sock: nhc.Socket) -> None:
    chan = sock.channel("room:gil")
    chan.join()
    stop = threading.Event()
    counts = [0]

    def spin() -> None:
        # Pure Python: it only runs while the waiting thread lets go of the GIL.
        while not stop.is_set():
            counts[0] += 1

    spinner = threading.Thread(target=spin)
    spinner.start()
    try:
        with pytest.raises(nhc.PushTimeout):
            chan.push("noreply_wait", {}, timeout=0.5)
        during = counts[0]
    finally:
        stop.set()
        spinner.join()
    assert during > 10_000, during


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals need the main thread")
def test_ctrl_c_interrupts_a_blocking_push(sock: nhc.Socket, ctrl_c: None) -> None:
    chan = sock.channel("room:sigint")
    chan.join()
    timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
    started = time.monotonic()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        chan.push("noreply_forever", {}, timeout=60.0)
    timer.join()
    assert time.monotonic() - started < WAIT


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals need the main thread")
def test_ctrl_c_interrupts_wait_connected(ctrl_c: None) -> None:
    sock = nhc.Socket("ws://127.0.0.1:9/socket/websocket")
    timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        sock.wait_connected()
    timer.join()
    sock.close()


def test_rust_log_records_reach_python_logging(server: DevServer, log_records: LogRecords) -> None:
    sock = nhc.Socket(server.ws_url)
    chan = sock.channel("room:log")
    chan.join_nowait(lambda ok, value: None)
    # Never connected: the cast cannot be sent, which the library logs.
    chan.cast("lost", {}, timeout=0.05)
    record = log_records.wait_for("could not be sent")
    assert record.name == "nerves_hub_channel"
    assert record.levelname == "WARNING"
    assert record.threadName != threading.current_thread().name
    sock.close()


def test_callbacks_run_on_one_library_thread(server: DevServer) -> None:
    names = set()
    done = threading.Event()

    def on_state(change: nhc.StateChange) -> None:
        names.add(threading.current_thread().ident)
        if change.state == "closed":
            done.set()

    socks = [nhc.Socket(server.ws_url, on_state=on_state) for _ in range(5)]
    for s in socks:
        s.connect()
    for s in socks:
        s.wait_connected(WAIT)
        s.close()
    assert done.wait(WAIT)
    assert len(names) == 1
    assert threading.get_ident() not in names


def _thread_name(native_id: int) -> str:
    return Path(f"/proc/self/task/{native_id}/comm").read_text().strip()


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux's /proc")
def test_the_io_thread_hands_events_to_the_delivery_thread_itself(server: DevServer, sock: nhc.Socket) -> None:
    """A threaded socket's events go from its I/O thread straight to
    nhc-py-delivery: the core's dispatcher thread (one more wake-up per
    message) is never started in a Python process."""
    chan = sock.channel("room:handoff")
    ran_on: "queue.Queue[str]" = queue.Queue()
    chan.on("n", lambda p: ran_on.put(_thread_name(threading.get_native_id())))
    chan.join()
    assert server.control.push("room:handoff", "n", {}) == 1
    assert ran_on.get(timeout=WAIT) == "nhc-py-delivery"
    names = {_thread_name(int(task.name)) for task in Path("/proc/self/task").iterdir()}
    assert "nhc-io" in names
    assert "nhc-dispatch" not in names


def test_callbacks_keep_their_thread_local_state(server: DevServer, delivering: nhc.Socket) -> None:
    """Callbacks run on one Python thread, whose state (threading.local,
    the thread's identity) lasts from one message to the next, rather than
    being made and torn down for each batch of events."""
    chan = delivering.channel("room:local")
    local = threading.local()
    seen: "queue.Queue[tuple]" = queue.Queue()

    def count(_payload: object) -> None:
        local.n = getattr(local, "n", 0) + 1
        seen.put((local.n, threading.current_thread().ident))

    chan.on("n", count)
    chan.join()
    got = []
    for _ in range(3):
        # One at a time: each message is a batch of its own.
        assert server.control.push("room:local", "n", {}) == 1
        got.append(seen.get(timeout=WAIT))
    assert [n for n, _ in got] == [1, 2, 3]
    assert len({ident for _, ident in got}) == 1


def test_a_log_level_change_reaches_the_core_at_once(server: DevServer, sock: nhc.Socket) -> None:
    """The core formats only what the logger would emit; a level lowered to
    DEBUG lets the core's debug records through from the next one on."""
    logger = logging.getLogger("nerves_hub_channel")
    records = LogRecords()
    old = logger.level
    logger.setLevel(logging.WARNING)
    logger.addHandler(records)
    try:
        logger.setLevel(logging.DEBUG)
        # A message for a topic nobody joined: the core logs it at DEBUG.
        assert server.control.raw('[null, null, "room:nobody", "e", {}]') >= 1
        record = records.wait_for("for no current channel dropped")
        assert record.levelname == "DEBUG"
    finally:
        logger.removeHandler(records)
        logger.setLevel(old)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux's /proc")
def test_the_logging_thread_does_not_poll() -> None:
    """With nothing to log, the logging thread sleeps: it learns of level
    changes from logging itself, not by waking every second to ask."""
    code = textwrap.dedent(
        """
        import os, time
        import nerves_hub_channel
        def switches():
            for tid in os.listdir("/proc/self/task"):
                base = f"/proc/self/task/{tid}"
                if open(base + "/comm").read().strip() == "nhc-py-log":
                    status = open(base + "/status").read().split("\\n")
                    return next(int(l.split()[1]) for l in status if l.startswith("voluntary_ctxt_switches"))
            raise SystemExit("no nhc-py-log thread")
        # Settled: its start-up (a GIL hand-over, its first wait) is done
        # once 50 ms pass without a switch.
        while True:
            before = switches()
            time.sleep(0.05)
            if switches() == before:
                break
        time.sleep(1.5)  # the measured window: it used to poll once a second
        print(switches() - before)
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=WAIT * 3)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) == 0
