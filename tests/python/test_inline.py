"""delivery="inline": callbacks on the socket's I/O thread, as each message is read."""

import queue
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest

import nerves_hub_channel as nhc
from conftest import FAST, DevServer, connected, get

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux's /proc")


def thread_name() -> str:
    return Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text().strip()


@pytest.fixture
def inline(server: DevServer) -> Iterator[nhc.Socket]:
    yield from connected(server, delivery="inline")


def test_callbacks_run_on_the_io_thread(server: DevServer, inline: nhc.Socket) -> None:
    # Order, exceptions and thread-local state: the `delivering` tests.
    assert inline.delivery == "inline"
    chan = inline.channel("room:inline-thread")
    got: "queue.Queue[str]" = queue.Queue()
    chan.on("n", lambda p: got.put(thread_name()))
    chan.join()
    for n in range(20):
        server.control.push("room:inline-thread", "n", {"n": n})
    assert {get(got) for _ in range(20)} == {"nhc-io"}


def test_a_callback_cannot_wait_but_may_push_without_waiting(server: DevServer, inline: nhc.Socket) -> None:
    chan = inline.channel("room:inline-push")
    outcomes: "queue.Queue[Any]" = queue.Queue()

    def on_go(payload: Any) -> None:
        # A blocking push would wait for this very thread to read its reply.
        try:
            chan.push("ping", payload)
        except nhc.Error as e:
            outcomes.put(("push raised", str(e)))
        chan.push_nowait("ping", payload, lambda ok, value: outcomes.put((ok, value, thread_name())))

    chan.on("go", on_go)
    chan.join()
    assert server.control.push("room:inline-push", "go", {"k": 1}) == 1
    raised, message = get(outcomes)
    assert raised == "push raised" and "cannot wait" in message
    assert get(outcomes) == (True, {"k": 1}, "nhc-io")
    # The connection went on: a blocking push from this thread is answered.
    assert chan.push("ping", {"k": 2}) == {"k": 2}


def test_close_from_a_callback(server: DevServer) -> None:
    states: "queue.Queue[str]" = queue.Queue()
    sock = nhc.Socket(server.ws_url, delivery="inline", on_state=lambda c: states.put(c.state), **FAST)
    chan = sock.channel("room:inline-close")
    chan.on("bye", lambda _p: sock.close())
    sock.connect()
    chan.join()
    assert server.control.push("room:inline-close", "bye", {}) == 1
    while get(states) != "closed":
        pass
    sock.close()
    assert sock.state == "closed"


def test_other_python_threads_run_while_messages_arrive(server: DevServer, inline: nhc.Socket) -> None:
    """The I/O thread takes the GIL per burst and gives it back: a thread
    busy in Python neither starves it nor is starved by it."""
    chan = inline.channel("room:inline-gil")
    got: "queue.Queue[int]" = queue.Queue()
    chan.on("n", lambda p: got.put(p["n"]))
    chan.join()
    stop = threading.Event()
    spins = [0]

    def spin() -> None:
        while not stop.is_set():
            spins[0] += 1

    spinner = threading.Thread(target=spin)
    spinner.start()
    try:
        for n in range(50):
            server.control.push("room:inline-gil", "n", {"n": n})
        assert [get(got) for _ in range(50)] == list(range(50))
    finally:
        stop.set()
        spinner.join()
    assert spins[0] > 0


def test_devices_refuse_inline_delivery(server: DevServer) -> None:
    with pytest.raises(nhc.InvalidArgument, match="for sockets"):
        nhc.Device(server.ws_url, delivery="inline")  # type: ignore[arg-type]


def test_an_unknown_delivery_is_refused(server: DevServer) -> None:
    with pytest.raises(nhc.InvalidArgument, match="inline"):
        nhc.Socket(server.ws_url, delivery="eventually")  # type: ignore[arg-type]
