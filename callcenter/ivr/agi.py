"""The FastAGI wire protocol as Asterisk 22 really speaks it, on top of panoramisk's ``Request``.

panoramisk 1.4 takes "the next line" as the reply to a command. Asterisk does not work that way
(recorded in ``../shared/fixtures/asterisk``):

- after a hang-up it sends a bare ``HANGUP`` line that answers nothing, possibly *between* our next
  command and that command's reply, and once more when we half-close;
- on a dead channel, channel commands answer ``511 Command Not Permitted …``;
- a usage error is a multi-line ``520-…`` reply ending with ``520 End of proper usage.``;
- ``GET DATA`` with no input answers ``200 result= (timeout)``; ``-1`` means hang-up *or* failure
  (a missing prompt file gives the same ``-1`` on a live channel).

:class:`AgiRequest` reads replies with its own line parser: it skips ``HANGUP`` lines (remembering
them), joins continuation lines, skips garbage, and raises from one exception family: a hang-up is
:class:`AGIHangup`, never a generic error.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from panoramisk.fast_agi import Request

log = logging.getLogger(__name__)

MAX_GARBAGE_LINES = 50
MAX_ENV_LINES = 200
MAX_LINE = 64 * 1024

_REPLY = re.compile(r"^(?P<code>\d{3})(?P<sep>[ -])(?P<rest>.*)$")
_RESULT = re.compile(r"^result=(?P<result>\S*)(?:\s+\((?P<data>.*?)\))?(?:\s+endpos=(?P<endpos>-?\d+))?\s*$")


class AGIError(Exception):
    """Base of every FastAGI protocol error."""


class AGIHangup(AGIError):
    """The caller hung up or the channel is gone: an expected end of the call, not a failure."""


class AGIDeadChannel(AGIHangup):
    """A channel command was refused with 511 (the channel is dead)."""


class AGIConnectionClosed(AGIHangup):
    """Asterisk closed the socket."""


class AGICommandFailed(AGIError):
    """``result=-1`` on a live channel (e.g. a missing prompt file)."""


class AGIInvalidCommand(AGIError):
    """510: Asterisk does not know the command."""


class AGIUsageError(AGIError):
    """520: wrong arguments; ``usage`` holds Asterisk's explanation."""

    def __init__(self, command: str, usage: str) -> None:
        super().__init__(f"{command!r}: usage error")
        self.usage = usage


class AGIProtocolError(AGIError):
    """Asterisk sent something that is not FastAGI (too much garbage, an unknown code)."""


@dataclass(frozen=True, slots=True)
class AgiReply:
    """One parsed reply: ``200 result=35 (dtmf) endpos=6400`` → code 200, result "35", data "dtmf"."""

    code: int
    result: str
    data: str | None
    endpos: int | None
    raw: str

    @property
    def result_int(self) -> int | None:
        try:
            return int(self.result)
        except ValueError:
            return None


def parse_reply(line: str) -> AgiReply:
    """Parse a single-line reply (``NNN rest``); multi-line replies are joined by the reader first."""
    match = _REPLY.match(line)
    if match is None:
        raise AGIProtocolError(f"not an AGI reply: {line[:80]!r}")
    code = int(match["code"])
    rest = match["rest"]
    if code == 200:
        parsed = _RESULT.match(rest)
        if parsed is None:
            raise AGIProtocolError(f"malformed 200 reply: {line[:80]!r}")
        endpos = parsed["endpos"]
        return AgiReply(code, parsed["result"], parsed["data"], int(endpos) if endpos else None, line)
    return AgiReply(code, "", None, None, line)


async def read_agi_environment(reader: asyncio.StreamReader) -> OrderedDict[str, str]:
    """Read the ``agi_*`` block up to its empty line; raises AGIConnectionClosed if the peer leaves."""
    headers: OrderedDict[str, str] = OrderedDict()
    for _ in range(MAX_ENV_LINES):
        line = await reader.readline()
        if not line.endswith(b"\n"):
            raise AGIConnectionClosed("connection closed before the end of the AGI environment")
        text = line.decode("utf-8", errors="replace").rstrip("\r\n")
        if text == "":
            return headers
        key, sep, value = text.partition(": ")
        if sep:
            headers[key] = value
        elif text.endswith(":"):
            headers[text[:-1]] = ""
    raise AGIProtocolError(f"AGI environment longer than {MAX_ENV_LINES} lines")


class AgiRequest(Request):  # type: ignore[misc]
    """panoramisk's FastAGI request with a reply reader that survives what Asterisk really sends."""

    def __init__(
        self,
        *args: object,
        reply_timeout: float = 120.0,
        on_turnaround: Callable[[float], None] | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.hung_up = False  # a bare HANGUP line was seen
        self.reply_timeout = reply_timeout
        # Our own reply time: from Asterisk's reply (or the environment) to our next command.
        self.on_turnaround = on_turnaround
        self.last_input_at = time.perf_counter()

    # panoramisk's public name, kept so code written against panoramisk still works.
    async def send_command(self, command: str) -> AgiReply:  # type: ignore[override]
        return await self.command(command)

    async def command(self, command: str, *, timeout: float | None = None) -> AgiReply:
        """Send one command and return its reply; raises from the AGIError family."""
        if "\n" in command:
            raise ValueError("an AGI command is one line")
        if self.on_turnaround is not None:
            self.on_turnaround(time.perf_counter() - self.last_input_at)
        try:
            self.writer.write((command + "\n").encode(self.encoding))
            await self.writer.drain()
        except (ConnectionError, RuntimeError) as exc:
            raise AGIConnectionClosed(f"cannot send {command.split(' ', 1)[0]}: {exc}") from exc
        async with asyncio.timeout(timeout or self.reply_timeout):  # no extra task, unlike wait_for
            reply = await self._read_reply(command)
        self.last_input_at = time.perf_counter()
        if reply.code == 200:
            return reply
        if reply.code == 511:
            self.hung_up = True
            raise AGIDeadChannel(f"{command.split(' ', 1)[0]} refused: the channel is dead")
        if reply.code == 510:
            raise AGIInvalidCommand(f"{command!r}: invalid or unknown command")
        if reply.code == 520:
            raise AGIUsageError(command, reply.raw)
        raise AGIProtocolError(f"unexpected reply to {command!r}: {reply.raw[:80]!r}")

    async def _readline(self) -> str:
        try:
            line = await self.reader.readline()
        except (ConnectionError, asyncio.LimitOverrunError, ValueError) as exc:
            raise AGIConnectionClosed(f"connection lost: {exc}") from exc
        if not line.endswith(b"\n"):  # EOF (possibly after a partial line)
            raise AGIConnectionClosed("Asterisk closed the connection")
        return line.decode(self.encoding, errors="replace").rstrip("\r\n")

    async def _read_reply(self, command: str) -> AgiReply:
        garbage = 0
        while True:
            line = await self._readline()
            if line == "HANGUP":
                self.hung_up = True
                continue
            match = _REPLY.match(line)
            if match is None:
                garbage += 1
                log.warning("skipping a line that is not an AGI reply: %r", line[:80])
                if garbage > MAX_GARBAGE_LINES:
                    raise AGIProtocolError(f"more than {MAX_GARBAGE_LINES} garbage lines after {command!r}")
                continue
            if match["sep"] == "-":  # multi-line reply: read up to "NNN " with the same code
                body = [match["rest"]]
                end = f"{match['code']} "
                while True:
                    more = await self._readline()
                    if more.startswith(end):
                        body.append(more[len(end) :])
                        break
                    body.append(more)
                return AgiReply(int(match["code"]), "", None, None, "\n".join(body))
            reply = parse_reply(line)
            if reply.code == 100:  # "100 result=0 Trying...": the real reply follows
                continue
            return reply

    async def is_alive(self) -> bool:
        """Whether the channel is still up (CHANNEL STATUS), used to tell a hang-up from a failure."""
        if self.hung_up:
            return False
        try:
            await self.command("CHANNEL STATUS")
        except AGIHangup:
            return False
        return not self.hung_up

    async def channel_command(self, command: str, *, timeout: float | None = None) -> AgiReply:
        """A command that needs a live channel: ``-1`` becomes AGIHangup or AGICommandFailed."""
        if self.hung_up:
            raise AGIHangup(f"not sending {command.split(' ', 1)[0]}: the caller hung up")
        reply = await self.command(command, timeout=timeout)
        if reply.result == "-1":
            if await self.is_alive():
                raise AGICommandFailed(f"{command!r} failed on a live channel: {reply.raw!r}")
            raise AGIHangup(f"the caller hung up during {command.split(' ', 1)[0]}")
        return reply

    async def get_variable(self, name: str) -> str | None:
        """A channel variable's value, or None when it is not set."""
        reply = await self.command(f"GET VARIABLE {name}")
        return reply.data if reply.result == "1" else None

    async def set_variable(self, name: str, value: str) -> None:
        """Set a channel variable (allowed on a dead channel too)."""
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        await self.command(f'SET VARIABLE {name} "{escaped}"')
