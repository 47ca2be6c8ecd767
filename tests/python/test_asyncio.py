"""The asyncio API, on the polled socket and the event loop's own thread."""

import asyncio
import threading
from typing import Any, Awaitable, Callable, List, TypeVar

import pytest

import nerves_hub_channel as nhc
from conftest import FAST, WAIT, DevServer

T = TypeVar("T")


def run(main: Callable[[], Awaitable[T]]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(main(), WAIT * 3)

    return asyncio.run(bounded())


def async_socket(server: DevServer, **kwargs: Any) -> nhc.AsyncSocket:
    return nhc.AsyncSocket(server.ws_url, **{**FAST, **kwargs})


def test_join_push_and_reply(server: DevServer) -> None:
    async def main() -> None:
        async with async_socket(server) as sock:
            await sock.wait_connected(WAIT)
            assert sock.state == "connected"
            chan = sock.channel("room:a1", params={"p": 1})
            assert await chan.join() == {}
            assert chan.joined
            assert await chan.push("ping", {"a": 1}) == {"a": 1}
            assert await chan.push("blob", b"\x00raw") == b"\x00raw"
        assert sock.state == "closed"

    run(main)


def test_messages_by_iteration(server: DevServer) -> None:
    async def main() -> List[nhc.Message]:
        async with async_socket(server) as sock:
            chan = sock.channel("room:iter")
            await chan.join()
            for n in range(5):
                server.control.push("room:iter", "n", {"n": n})
            server.control.push("room:iter", "bin", binary=b"\x01")
            got: List[nhc.Message] = []
            async for message in chan:
                got.append(message)
                if len(got) == 6:
                    await chan.leave()
            return got

    got = run(main)
    assert [m.payload for m in got[:5]] == [{"n": n} for n in range(5)]
    assert got[5] == nhc.Message("bin", b"\x01", "room:iter")
    assert got[0].event == "n" and got[0].topic == "room:iter"


def test_concurrent_pushes_are_matched_to_their_replies(server: DevServer) -> None:
    async def main() -> List[Any]:
        async with async_socket(server) as sock:
            chan = sock.channel("room:many")
            await chan.join()
            return await asyncio.gather(*(chan.push("n", {"n": n}) for n in range(300)))

    assert run(main) == [{"n": n} for n in range(300)]


def test_errors(server: DevServer) -> None:
    async def main() -> None:
        async with async_socket(server) as sock:
            chan = sock.channel("room:aerr")
            await chan.join()
            with pytest.raises(nhc.PushError) as info:
                await chan.push("error_bad", {"x": 1})
            assert info.value.response == {"x": 1}
            with pytest.raises(nhc.PushTimeout):
                await chan.push("noreply_x", {}, timeout=0.2)
            with pytest.raises(nhc.InvalidArgument):
                await chan.push("x", {"bad": float("nan")})
            refused = sock.channel("nope:1")
            with pytest.raises(nhc.JoinError) as join_info:
                await refused.join()
            assert join_info.value.reason == "refused"
            await refused.leave()

    run(main)


def test_join_of_a_joined_channel_answers_at_once(server: DevServer) -> None:
    async def main() -> None:
        async with async_socket(server) as sock:
            chan = sock.channel("room:twice")
            await chan.join()
            assert await chan.join() == {}

    run(main)


def test_wait_connected_raises_the_connection_error() -> None:
    async def main() -> None:
        sock = nhc.AsyncSocket("ws://127.0.0.1:9/socket/websocket", **FAST)
        sock.connect()
        with pytest.raises(nhc.ConnectError):
            await sock.wait_connected(WAIT)
        chan = sock.channel("room:x")
        with pytest.raises(nhc.JoinError) as info:
            await chan.join(timeout=0.2)
        assert isinstance(info.value.__cause__, nhc.ConnectError)
        await sock.close()

    run(main)


def test_auth_error_over_wss(server: DevServer) -> None:
    async def main() -> None:
        async with nhc.AsyncSocket(server.wss_url, ca=server.ca, **FAST) as sock:
            with pytest.raises(nhc.AuthError):
                await sock.wait_connected(WAIT)

    run(main)


def test_rejoin_after_drop_and_buffered_push(server: DevServer) -> None:
    states: List[str] = []

    async def main() -> None:
        async with async_socket(server, on_state=lambda c: states.append(c.state)) as sock:
            chan = sock.channel("room:adrop")
            await chan.join()
            server.control.drop()
            # A push written to the dying connection would time out (as in
            # phoenix.js); one made after the rejoin is answered. The wait
            # blocks the loop, which the I/O threads do not need.
            server.control.wait_joined("room:adrop", count=2)
            assert await chan.push("after", {"n": 1}) == {"n": 1}

    run(main)
    assert states.count("connected") == 2
    assert states[-1] == "closed"


def test_close_fails_what_is_pending(server: DevServer) -> None:
    async def main() -> None:
        sock = async_socket(server)
        sock.connect()
        chan = sock.channel("room:apending")
        await chan.join()
        push = asyncio.ensure_future(chan.push("noreply_pending", {}, timeout=WAIT))
        receive = asyncio.ensure_future(chan.receive())
        await asyncio.sleep(0)
        await sock.close()
        with pytest.raises(nhc.ClosedError):
            await push
        with pytest.raises(nhc.ClosedError):
            await receive
        async for _ in chan:
            raise AssertionError("no message after close")

    run(main)


def test_a_slow_consumer_loses_nothing(server: DevServer) -> None:
    async def main() -> List[int]:
        async with async_socket(server, event_capacity=4) as sock:
            chan = sock.channel("room:slow", max_pending=2)
            await chan.join()
            count = 300
            for n in range(count):
                server.control.push("room:slow", "n", {"n": n})
            got: List[int] = []
            while len(got) < count:
                message = await chan.receive()
                got.append(message.payload["n"])
            return got

    assert run(main) == list(range(300))


def test_callbacks_run_on_the_loop_thread(server: DevServer) -> None:
    threads = set()

    async def main() -> None:
        async with async_socket(server, on_state=lambda c: threads.add(threading.get_ident())) as sock:
            await sock.wait_connected(WAIT)

    run(main)
    assert threads == {threading.get_ident()}


def test_mutual_tls(server: DevServer) -> None:
    async def main() -> Any:
        async with nhc.AsyncSocket(
            server.wss_url, ca=server.ca, cert=server.device_cert, key=server.device_key
        ) as sock:
            chan = sock.channel("device", params={"nerves_fw_uuid": "abc"})
            return await chan.join()

    assert isinstance(run(main), dict)
