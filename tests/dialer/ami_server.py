"""A fake Asterisk AMI server on a real TCP socket that replays the recorded Asterisk 22 transcripts.

It speaks just enough AMI for a real client (panoramisk's Manager): banner, Login (the recorded
reply, including the recorded refusal), Ping, CoreShowChannels, Logoff, and Originate. An Originate
for a number found in ``scenarios`` replays that scenario's recorded bytes after the Originate, in
their original TCP segmentation and order, with the recorded ChannelId and ActionID replaced by the
ones the client sent. Like Asterisk, it broadcasts events to every logged-in session, and a call
keeps running when a session drops, so reconnect-and-reconcile paths can be exercised.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

CRLF = "\r\n"


@dataclass
class Transcript:
    path: Path
    meta: dict[str, object]
    banner: list[str]  # chunks before our Login
    login_reply: list[tuple[float, str]]  # (delay, chunk) after Login, up to the Originate (or EOF)
    login_closes: bool  # Asterisk closed the connection after the login reply
    after_originate: list[tuple[float, str]]  # (delay, chunk) from the Originate up to our Logoff

    @classmethod
    def load(cls, path: Path) -> Transcript:
        with path.open(encoding="utf-8") as f:
            meta, *records = (json.loads(line) for line in f)
        phases: list[list[tuple[float, str]]] = [[]]
        closes = False
        last_t = 0.0
        data = [r for r in records if "data" in r or r.get("eof")]
        for (direction, _chunk), group_iter in itertools.groupby(
            data, key=lambda r: (r["dir"], r.get("chunk", "eof"))
        ):
            group = list(group_iter)
            if direction == "out":
                if "data" in group[0]:
                    phases.append([])
                    last_t = group[0]["t"]
                continue
            if group[0].get("eof"):
                closes = True
                continue
            text = "".join(r["data"] for r in group)
            phases[-1].append((max(0.0, group[0]["t"] - last_t), text))
            last_t = group[0]["t"]
        banner = [c for _, c in phases[0]]
        login_reply = phases[1] if len(phases) > 1 else []
        after = phases[2] if len(phases) > 2 else []
        return cls(path, meta, banner, login_reply, closes and len(phases) <= 2, after)


@dataclass
class FakeCall:
    channel_id: str
    task: asyncio.Task[None] | None = None
    alive: bool = True


@dataclass
class FakeAmi:
    """The server; ``scenarios`` maps the dialled number (from ``Local/<n>@…``) to a transcript."""

    scenarios: dict[str, Transcript]
    login: Transcript
    time_scale: float = 0.0  # 0 = as fast as possible, 1 = real time
    secret: str = "dialer-secret"
    originates: list[dict[str, str]] = field(default_factory=list)  # every Originate received
    sessions: set[asyncio.StreamWriter] = field(default_factory=set)
    calls: dict[str, FakeCall] = field(default_factory=dict)
    hold_after: dict[str, int] = field(default_factory=dict)  # channel id → pause after N chunks
    reject_connections: bool = False  # accept and close at once, as a PBX that is restarting
    # Chooses a transcript for numbers not in ``scenarios`` (None: "Extension does not exist").
    pick: Callable[[str], Transcript | None] | None = None
    _server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        for call in self.calls.values():
            if call.task:
                call.task.cancel()
        self.drop_sessions()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    def drop_sessions(self) -> None:
        """Cut every AMI connection, as a network failure would. Calls go on."""
        for writer in list(self.sessions):
            with contextlib.suppress(Exception):
                writer.transport.abort()
        self.sessions.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.reject_connections:
            writer.close()
            return
        for chunk in self.login.banner:
            writer.write(chunk.encode())
        buffer = ""
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                buffer += data.decode()
                while CRLF + CRLF in buffer:
                    raw, buffer = buffer.split(CRLF + CRLF, 1)
                    if not await self._handle(parse(raw), writer):
                        return
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.sessions.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()

    async def _handle(self, action: dict[str, str], writer: asyncio.StreamWriter) -> bool:
        name = action.get("action", "").lower()
        action_id = action.get("actionid", "")
        if name == "login":
            ok = action.get("secret") == self.secret
            reply = self.login if ok else self.scenarios["__login_failure__"]
            recorded_id = _action_id(reply.login_reply)
            for delay, chunk in reply.login_reply:
                await asyncio.sleep(delay * self.time_scale)
                writer.write(chunk.replace(recorded_id or "\0", action_id).encode())
            if not ok or reply.login_closes:
                await writer.drain()
                writer.close()
                return False
            self.sessions.add(writer)
            return True
        if name == "ping":
            writer.write(_msg(Response="Success", ActionID=action_id, Ping="Pong", Timestamp="0.0"))
        elif name == "logoff":
            writer.write(_msg(Response="Goodbye", ActionID=action_id, Message="Thanks for all the fish."))
            await writer.drain()
            writer.close()
            return False
        elif name == "coreshowchannels":
            writer.write(
                _msg(
                    Response="Success", ActionID=action_id, EventList="start", Message="Channels will follow"
                )
            )
            live = [c for c in self.calls.values() if c.alive]
            for call in live:  # like Asterisk: one entry per channel, both Local halves
                for uniqueid, half in ((call.channel_id, 1), (f"{call.channel_id};2", 2)):
                    writer.write(
                        _msg(
                            Event="CoreShowChannel",
                            ActionID=action_id,
                            Uniqueid=uniqueid,
                            Linkedid=call.channel_id,
                            Channel=f"Local/x-{call.channel_id[:8]};{half}",
                        )
                    )
            writer.write(
                _msg(
                    Event="CoreShowChannelsComplete",
                    ActionID=action_id,
                    EventList="Complete",
                    ListItems=str(2 * len(live)),
                )
            )
        elif name == "originate":
            self.originates.append(action)
            self._originate(action, writer)
        else:
            writer.write(
                _msg(
                    Response="Error",
                    ActionID=action_id,
                    Message=f"Invalid/unknown command: {action.get('action')}.",
                )
            )
        return True

    def _originate(self, action: dict[str, str], writer: asyncio.StreamWriter) -> None:
        action_id = action.get("actionid", "")
        channel = action.get("channel")
        if not channel:
            writer.write(_msg(Response="Error", ActionID=action_id, Message="Channel not specified"))
            return
        number = re.sub(r"^\w+/([^@]+)@.*$", r"\1", channel)
        transcript = self.scenarios.get(number)
        if transcript is None and self.pick is not None:
            transcript = self.pick(number)
        if transcript is None:
            writer.write(_msg(Response="Error", ActionID=action_id, Message="Extension does not exist."))
            return
        channel_id = action["channelid"]
        call = FakeCall(channel_id)
        self.calls[channel_id] = call
        call.task = asyncio.create_task(self._play(call, transcript, action_id, writer))

    async def _play(
        self, call: FakeCall, transcript: Transcript, action_id: str, requester: asyncio.StreamWriter
    ) -> None:
        meta = transcript.meta
        old_channel, old_action = str(meta["channel_id"]), str(meta["originate_action_id"])
        hold = self.hold_after.get(call.channel_id)
        for index, (delay, chunk) in enumerate(transcript.after_originate):
            if hold is not None and index == hold:
                while call.channel_id in self.hold_after:
                    await asyncio.sleep(0.01)
            await asyncio.sleep(delay * self.time_scale)
            text = chunk.replace(old_channel, call.channel_id).replace(old_action, action_id)
            for message in text.split(CRLF + CRLF):
                if not message.strip():
                    continue
                data = (message + CRLF + CRLF).encode()
                if message.startswith("Response:"):
                    if requester in self.sessions:
                        requester.write(data)
                    continue
                for writer in list(self.sessions):
                    with contextlib.suppress(Exception):
                        writer.write(data)
        call.alive = False


def parse(raw: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in raw.split(CRLF):
        if ": " in line:
            key, value = line.split(": ", 1)
            key = key.lower()
            out[key] = value if key not in out else out[key] + "\n" + value
    return out


def _msg(**headers: str) -> bytes:
    return ("".join(f"{k}: {v}{CRLF}" for k, v in headers.items()) + CRLF).encode()


def _action_id(chunks: list[tuple[float, str]]) -> str | None:
    for _, chunk in chunks:
        match = re.search(r"ActionID: (\S+)", chunk)
        if match:
            return match.group(1)
    return None


class ThreadedFakeAmi:
    """Runs a :class:`FakeAmi` on its own event loop in a thread, for tests driving real processes."""

    def __init__(self, fake: FakeAmi) -> None:
        self.fake = fake
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fake-ami", daemon=True)

    def start(self) -> int:
        self.thread.start()
        return asyncio.run_coroutine_threadsafe(self.fake.start(), self.loop).result(timeout=10)

    def run(self, func: Callable[[], object]) -> None:
        """Run ``func`` on the server's loop and wait for it."""
        done = threading.Event()

        def call() -> None:
            try:
                func()
            finally:
                done.set()

        self.loop.call_soon_threadsafe(call)
        done.wait(timeout=10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.fake.stop(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()
