"""Creating and closing many sockets leaks no descriptor and no thread."""

import gc
import os

import nerves_hub_channel as nhc
from conftest import WAIT, DevServer

# A polled socket's pipe may close a moment after its last event (the I/O
# thread drops the last reference): allow the last few sockets', not hundreds.
SLACK = 8


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def threads() -> int:
    return len(os.listdir("/proc/self/task"))


def test_a_thousand_threaded_sockets(server: DevServer) -> None:
    # Warm up: the runtime, the delivery and logging threads start once.
    with nhc.Socket(server.ws_url) as s:
        s.connect()
        s.wait_connected(WAIT)
    gc.collect()
    fds, tasks = open_fds(), threads()
    for _ in range(1000):
        sock = nhc.Socket(server.ws_url)
        sock.connect()
        sock.wait_connected(WAIT)
        sock.close()
        del sock
    gc.collect()
    assert open_fds() <= fds + SLACK
    assert threads() <= tasks


def test_a_thousand_polled_sockets(server: DevServer) -> None:
    sock = nhc.Socket(server.ws_url, delivery="polled")
    sock.fileno()
    sock.close()
    del sock
    gc.collect()
    fds = open_fds()
    for _ in range(1000):
        sock = nhc.Socket(server.ws_url, delivery="polled")
        assert sock.fileno() >= 0
        sock.connect()
        sock.close()
        while sock.dispatch(timeout=WAIT) and sock.state != "closed":
            pass
        del sock
    gc.collect()
    assert open_fds() <= fds + SLACK
