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


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


# Ten thousand sockets, each connected, joined and closed: after a warm-up
# of a thousand (allocator arenas, interned strings, the runtime's threads),
# descriptors stay equal and RSS within RSS_SLACK_KIB.
SOCKETS = 10_000
WARM_UP = 1_000
RSS_SLACK_KIB = 4 * 1024


def test_ten_thousand_joined_sockets_keep_rss_and_fds_flat(server: DevServer) -> None:
    def cycle(count: int) -> None:
        for _ in range(count):
            sock = nhc.Socket(server.ws_url)
            sock.connect()
            sock.wait_connected(WAIT)
            assert sock.channel("room:rss").join(WAIT) == {}
            sock.close()
            del sock

    cycle(WARM_UP)
    gc.collect()
    fds, tasks, rss = open_fds(), threads(), rss_kib()
    cycle(SOCKETS - WARM_UP)
    gc.collect()
    after = (open_fds(), threads(), rss_kib())
    print(f"after {WARM_UP}: fds {fds}, threads {tasks}, RSS {rss} KiB; "
          f"after {SOCKETS}: fds {after[0]}, threads {after[1]}, RSS {after[2]} KiB")
    assert after[0] == fds, "descriptors leaked"
    assert after[1] <= tasks, "threads leaked"
    assert after[2] <= rss + RSS_SLACK_KIB, f"RSS grew by {after[2] - rss} KiB"
