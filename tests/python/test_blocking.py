"""The blocking API: joins, pushes, replies, handlers and callbacks."""

import json
import queue
import random
import threading
from typing import Any, List, Tuple

import pytest

import nerves_hub_channel as nhc
from conftest import FAST, WAIT, DevServer, LogRecords, get


def test_join_push_and_reply(sock: nhc.Socket) -> None:
    chan = sock.channel("room:1", params={"name": "py"})
    assert chan.state == "closed"
    assert chan.join() == {}
    assert chan.joined
    assert chan.state == "joined"
    assert chan.push("ping", {"a": [1, 2.5, None, True, "é"]}) == {"a": [1, 2.5, None, True, "é"]}
    assert chan.push("nothing") == {}
    chan.leave()
    assert chan.state == "closed"


def test_join_params_reach_the_server(server: DevServer, sock: nhc.Socket) -> None:
    sock.channel("room:params", params={"serial": "abc", "n": 3}).join()
    (join,) = server.control.wait("room:params", "phx_join")
    assert join["payload"] == {"serial": "abc", "n": 3}


def test_binary_payloads_travel_as_bytes(sock: nhc.Socket) -> None:
    chan = sock.channel("room:bin")
    chan.join()
    assert chan.push("blob", b"\x00\x01\xffdata") == b"\x00\x01\xffdata"
    assert chan.push("blob", bytearray(b"xy")) == b"xy"


def test_server_messages_reach_handlers(server: DevServer, sock: nhc.Socket) -> None:
    chan = sock.channel("room:msg")
    updates: "queue.Queue[Any]" = queue.Queue()
    everything: "queue.Queue[Tuple[str, Any]]" = queue.Queue()
    chan.on("update", updates.put)
    chan.on("*", lambda event, payload: everything.put((event, payload)))
    chan.join()
    assert server.control.push("room:msg", "update", {"version": "1.2.3"}) == 1
    assert server.control.push("room:msg", "other", binary=b"\x01\x02") == 1
    assert get(updates) == {"version": "1.2.3"}
    assert get(everything) == ("update", {"version": "1.2.3"})
    assert get(everything) == ("other", b"\x01\x02")
    assert updates.empty()


def test_payloads_decode_like_json_loads(server: DevServer, sock: nhc.Socket) -> None:
    # Frames written by hand, with the whitespace a server may put around and
    # inside a payload; each is decoded as json.loads decodes the payload text.
    chan = sock.channel("room:spaced")
    got: "queue.Queue[Any]" = queue.Queue()
    chan.on("*", lambda event, payload: got.put((event, payload)))
    chan.join()
    payloads = ['{ "a" : [1, 2.5, null] ,\n "b": "\u00e9t\u00e9" }', '\t[ ]\r\n', " 42 ", '"x"']
    for n, text in enumerate(payloads):
        assert server.control.raw(f'[null, null, "room:spaced", "e{n}", {text}]') == 1
    for n, text in enumerate(payloads):
        assert get(got) == (f"e{n}", json.loads(text))


def random_json(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(9 if depth < 4 else 6)
    if kind == 0:
        return rng.randrange(-(10**rng.randrange(1, 30)), 10 ** rng.randrange(1, 30))
    if kind == 1:
        return rng.choice([rng.uniform(-1e6, 1e6), rng.random() * 10.0 ** rng.randrange(-320, 308), -0.0])
    if kind == 2:
        alphabet = 'ab"\\/\b\f\n\r\t\x00\x1f\x7f é€\U0001f600'
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(20)))
    if kind == 3:
        return rng.choice([True, False, None])
    if kind == 4:
        return ""
    if kind == 5:
        return rng.randrange(-5, 5)
    if kind in (6, 7):
        keys = ["a", "é", 'q"', "\n", "", "\U0001f600"]
        return {rng.choice(keys) + str(rng.randrange(3)): random_json(rng, depth + 1) for _ in range(rng.randrange(5))}
    return [random_json(rng, depth + 1) for _ in range(rng.randrange(5))]


def test_payloads_decode_exactly_as_json_loads(server: DevServer, sock: nhc.Socket) -> None:
    # Payloads are built from the JSON text in Rust; what json.loads gives
    # (types, big integers, float rounding, escapes, duplicate keys, lone
    # surrogates, which take the _json path) must come out, compared by repr
    # so that 1 and 1.0, or 0.0 and -0.0, differ.
    chan = sock.channel("room:exact")
    got: "queue.Queue[Any]" = queue.Queue()
    chan.on("*", lambda event, payload: got.put((event, payload)))
    chan.join()
    rng = random.Random(18)
    payloads = [
        '{"a": 1, "b": {"a": 3}, "a": 2}',
        "[1, -0, -0.0, 0.5, 1e2, 1E-2, -1.5e+3, 1e400, -1e400, 5e-324, 2.2250738585072014e-308]",
        "[123456789012345678, 999999999999999999, 1234567890123456789, -99999999999999999999999999]",
        r'"esc: \" \\ \/ \b \f \n \r \t \u00e9 \u20AC \ud83d\ude00 \u0000"',
        '"raw: \u00e9 \u20ac \U0001f600 \x7f"',
        r'"lone: \ud800 x \udc00 \ud800\u0041 \udbff"',
        '[[[[[]]]], {}, [], "", true, false, null, {"": ""}]',
        "[" * 120 + "]" * 120,
        json.dumps(["x\\y" * 2000, "\u00e9" * 3000]),
        "1" * 400,
    ]
    payloads += [json.dumps(random_json(rng), ensure_ascii=n % 2 == 0) for n in range(150)]
    for n, text in enumerate(payloads):
        assert server.control.raw(f'[null, null, "room:exact", "e{n}", {text}]') == 1
    for n, text in enumerate(payloads):
        event, payload = get(got)
        assert event == f"e{n}"
        assert repr(payload) == repr(json.loads(text)), text


def test_messages_keep_their_order(server: DevServer, delivering: nhc.Socket) -> None:
    chan = delivering.channel("room:order")
    got: "queue.Queue[int]" = queue.Queue()
    chan.on("n", lambda p: got.put(p["n"]))
    chan.join()
    for n in range(200):
        server.control.push("room:order", "n", {"n": n})
    assert [get(got) for _ in range(200)] == list(range(200))


def test_off_removes_handlers(server: DevServer, sock: nhc.Socket) -> None:
    chan = sock.channel("room:off")
    got: "queue.Queue[str]" = queue.Queue()

    def first(payload: Any) -> None:
        got.put("first")

    chan.on("e", first)
    chan.on("e", lambda p: got.put("second"))
    assert chan.off("e", first) == 1
    assert chan.off("e", first) == 0
    chan.join()
    server.control.push("room:off", "e", {})
    assert get(got) == "second"
    assert chan.off("e") == 1


def test_handler_exception_is_logged_and_delivery_goes_on(
    server: DevServer, delivering: nhc.Socket, log_records: LogRecords
) -> None:
    chan = delivering.channel("room:raise")
    got: "queue.Queue[Any]" = queue.Queue()

    def handler(payload: Any) -> None:
        if payload["n"] == 0:
            raise RuntimeError("handler failure on purpose")
        got.put(payload["n"])

    chan.on("n", handler)
    chan.join()
    server.control.push("room:raise", "n", {"n": 0})
    server.control.push("room:raise", "n", {"n": 1})
    record = log_records.wait_for("handler failure on purpose")
    assert record.name == "nerves_hub_channel"
    assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)
    assert get(got) == 1


def test_push_from_a_handler_does_not_deadlock(server: DevServer, sock: nhc.Socket) -> None:
    chan = sock.channel("room:reentrant")
    replies: "queue.Queue[Any]" = queue.Queue()
    chan.on("ask", lambda p: replies.put(chan.push("answer", {"to": p["q"]})))
    chan.join()
    server.control.push("room:reentrant", "ask", {"q": 7})
    assert get(replies) == {"to": 7}


def test_join_and_leave_from_a_handler(server: DevServer, sock: nhc.Socket) -> None:
    control = sock.channel("room:control")
    other = sock.channel("room:other")
    states: "queue.Queue[Tuple[str, Any]]" = queue.Queue()
    other.on_state(lambda state, detail: states.put((state, detail)))
    control.on("join", lambda p: states.put(("join returned", other.join())))
    control.on("leave", lambda p: other.leave())
    control.join()
    server.control.push("room:control", "join", {})
    # The join returns inside the handler; the state callback runs after it.
    assert get(states) == ("join returned", {})
    assert get(states) == ("joined", {})
    server.control.push("room:control", "leave", {})
    assert get(states) == ("closed", "left")


def test_cast_reaches_the_server(server: DevServer, sock: nhc.Socket) -> None:
    chan = sock.channel("room:cast")
    chan.join()
    chan.cast("noreply_progress", {"value": 42})
    (msg,) = server.control.wait("room:cast", "noreply_progress")
    assert msg["payload"] == {"value": 42}


def test_pushes_wait_for_the_connection_and_the_join(server: DevServer) -> None:
    sock = nhc.Socket(server.ws_url, **FAST)
    chan = sock.channel("room:early")
    joined: "queue.Queue[Tuple[bool, Any]]" = queue.Queue()
    chan.join_nowait(lambda ok, value: joined.put((ok, value)))
    answers: "queue.Queue[Any]" = queue.Queue()
    worker = threading.Thread(target=lambda: answers.put(chan.push("early", {"x": 1})))
    worker.start()
    sock.connect()
    assert get(answers) == {"x": 1}
    assert get(joined) == (True, {})
    worker.join(WAIT)
    sock.close()


def test_state_callbacks(server: DevServer) -> None:
    changes: "queue.Queue[nhc.StateChange]" = queue.Queue()
    sock = nhc.Socket(server.ws_url, on_state=changes.put, **FAST)
    assert sock.state == "disconnected"
    sock.connect()
    first = get(changes)
    assert (first.state, first.attempt, first.error) == ("connecting", 1, None)
    assert get(changes).state == "connected"
    sock.wait_connected(WAIT)
    assert sock.state == "connected"
    sock.disconnect()
    down = get(changes)
    assert down.state == "disconnected"
    assert isinstance(down.error, nhc.ClosedError)
    assert down.reconnect_in is None
    sock.close()
    assert get(changes).state == "closed"
    assert sock.state == "closed"
    assert "closed" in repr(sock)


def test_close_from_a_callback(server: DevServer) -> None:
    done: "queue.Queue[str]" = queue.Queue()
    holder: List[nhc.Socket] = []

    def on_state(change: nhc.StateChange) -> None:
        if change.state == "connected":
            holder[0].close()
        done.put(change.state)

    sock = nhc.Socket(server.ws_url, on_state=on_state, **FAST)
    holder.append(sock)
    sock.connect()
    states = [get(done) for _ in range(4)]
    assert states == ["connecting", "connected", "disconnected", "closed"]


def test_context_manager_closes(server: DevServer) -> None:
    with nhc.Socket(server.ws_url, **FAST) as sock:
        sock.connect()
        sock.wait_connected(WAIT)
        chan = sock.channel("room:with")
        chan.join()
    assert sock.state == "closed"
    with pytest.raises(nhc.ClosedError):
        chan.push("late", {})


def test_leave(server: DevServer, sock: nhc.Socket) -> None:
    chan = sock.channel("room:leave")
    chan.join()
    chan.leave()
    server.control.wait("room:leave", "phx_leave")
    assert not chan.joined
    with pytest.raises(nhc.ClosedError):
        chan.push("after_leave", {}, timeout=1.0)
    chan.leave()  # leaving again is harmless


def test_many_channels_and_threads(server: DevServer, sock: nhc.Socket) -> None:
    chans = [sock.channel(f"room:t{i}") for i in range(8)]
    for c in chans:
        c.join()
    results: "queue.Queue[Any]" = queue.Queue()

    def work(c: nhc.Channel) -> None:
        for n in range(25):
            results.put((c.topic, c.push("n", {"n": n})["n"]))

    threads = [threading.Thread(target=work, args=(c,)) for c in chans]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT * 3)
    got = sorted(get(results) for _ in range(8 * 25))
    assert got == sorted((c.topic, n) for c in chans for n in range(25))
