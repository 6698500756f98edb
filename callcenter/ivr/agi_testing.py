"""A fake Asterisk that speaks FastAGI from recorded real sessions, for protocol tests and the benchmark.

Like panoramisk's own testing helper, it needs no PBX. It reads a recording from
``../shared/fixtures/asterisk/agi-*.jsonl`` (what Asterisk 22 really sent) and plays the *citizen*
of that call against any FastAGI server: the ``agi_*`` environment block in its original chunks,
then, for each command the server sends, the reply Asterisk would give:

- the citizen's inputs (digits, silence, a recording, the hang-up) are taken, in order, from the
  replies the recording holds for GET DATA / WAIT FOR DIGIT / RECORD FILE, translated to whichever
  of those commands the server uses (``WAIT FOR DIGIT`` answers an ASCII code, ``GET DATA`` the
  digits, and so on);
- after the hang-up, Asterisk's real behaviour: a bare ``HANGUP`` line before the next reply, then
  ``511`` for channel commands and ``200`` for dead-channel-safe ones, and a last ``HANGUP`` when
  the server closes;
- optional noise: garbage lines, ``100 Trying`` lines and replies split across TCP writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import time
import wave
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callcenter.ivr import constants as c
from callcenter.ivr.call_token import call_token, call_token_key

DEAD_511 = "511 Command Not Permitted on a dead channel or intercept routine\n"
# Commands res_agi allows on a dead channel.
DEAD_SAFE = ("GET VARIABLE", "GET FULL VARIABLE", "SET VARIABLE", "NOOP", "VERBOSE", "EXEC", "DATABASE")
INPUT_COMMANDS = ("GET DATA", "WAIT FOR DIGIT", "RECORD FILE")


def survey_variables(attempt_id: int, dossier_id: int, *, pii_key: bytes) -> dict[str, str]:
    """The channel variables the dialer's Originate sets for a survey call (ids and their token)."""
    token = call_token(call_token_key(pii_key), attempt_id=attempt_id, dossier_id=dossier_id)
    return {c.VAR_ATTEMPT_ID: str(attempt_id), c.VAR_DOSSIER_ID: str(dossier_id), c.VAR_CALL_TOKEN: token}


@dataclass(frozen=True, slots=True)
class CitizenInput:
    """What the citizen did when asked: pressed ``digits``, stayed silent, spoke (recording), hung up."""

    kind: str  # digits | timeout | recording | hangup
    digits: str = ""
    endpos: int = 0  # samples recorded (8 kHz), for recordings and hang-ups during RECORD FILE
    ended_by: str = ""  # dtmf | timeout, for recordings


def load_recording(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The metadata line and the records of one fixture file."""
    with path.open(encoding="utf-8") as f:
        meta, *records = (json.loads(line) for line in f)
    return meta, records


def environment_chunks(records: list[dict[str, Any]]) -> list[str]:
    """The ``agi_*`` block as Asterisk sent it, one string per TCP chunk, up to the empty line."""
    chunks: dict[int, str] = {}
    for record in records:
        if record["dir"] != "in" or "data" not in record:
            continue
        chunks[record["chunk"]] = chunks.get(record["chunk"], "") + record["data"]
        if record["data"] == "\n":
            break
    return [chunks[k] for k in sorted(chunks)]


def command_exchanges(records: list[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    """Each command the recorder sent, with the lines Asterisk sent before the next command."""
    exchanges: list[tuple[str, list[str]]] = []
    env_done = False
    for record in records:
        if "data" not in record:
            continue
        if not env_done:
            if record["dir"] == "in" and record["data"] == "\n":
                env_done = True
            continue
        if record["dir"] == "out":
            exchanges.append((record["data"].rstrip("\n"), []))
        elif exchanges:
            exchanges[-1][1].append(record["data"])
    return exchanges


_RESULT = re.compile(r"^200 result=(?P<r>-?\d*)(?: \((?P<d>[^)]*)\))?(?: endpos=(?P<e>\d+))?")


def citizen_inputs(records: list[dict[str, Any]]) -> list[CitizenInput]:
    """The citizen's behaviour in a recording: the inputs up to (and including) the hang-up."""
    inputs: list[CitizenInput] = []
    for command, replies in command_exchanges(records):
        verb = next((v for v in INPUT_COMMANDS if command.startswith(v)), None)
        if verb is None:
            continue
        numbered = [i for i, r in enumerate(replies) if r[:3].isdigit()]
        if not numbered:
            continue
        reply = replies[numbered[0]]
        if reply.startswith("511") or "HANGUP\n" in replies[: numbered[0]]:
            inputs.append(CitizenInput("hangup"))
            break
        m = _RESULT.match(reply)
        if m is None:
            continue
        result, data, endpos = m["r"], m["d"], int(m["e"] or 0)
        if result == "-1":
            inputs.append(CitizenInput("hangup", endpos=endpos))
            break
        if verb == "GET DATA":
            inputs.append(CitizenInput("digits", result) if result else CitizenInput("timeout"))
        elif verb == "WAIT FOR DIGIT":
            code = int(result or 0)
            inputs.append(CitizenInput("digits", chr(code)) if code > 0 else CitizenInput("timeout"))
        else:
            inputs.append(CitizenInput("recording", endpos=endpos, ended_by=data or "timeout"))
    return inputs


@dataclass
class SessionStats:
    """What one fake call saw: commands received and how long the server took to send each one."""

    commands: list[str] = field(default_factory=list)
    reply_times: list[float] = field(default_factory=list)  # our reply (or env) → the next command
    closed_by_server: bool = False


class FakeAsterisk:
    """Plays one recorded citizen against a FastAGI server over a real TCP connection."""

    def __init__(
        self,
        env_chunks: list[str],
        inputs: list[CitizenInput],
        *,
        variables: dict[str, str],
        after_inputs: CitizenInput = CitizenInput("timeout"),
        garbage: bool = False,
        split_writes: bool = False,
        barge_in: bool = False,
        think_time: float = 0.0,
        write_recordings: bool = False,
        seed: int = 0,
    ) -> None:
        self.env_chunks = env_chunks
        self.inputs = deque(inputs)
        self.variables = dict(variables)
        self.after_inputs = after_inputs  # what the citizen does once the recording's inputs run out
        self.garbage = garbage
        self.split_writes = split_writes
        self.barge_in = barge_in
        self.think_time = think_time
        self.write_recordings = write_recordings
        self.random = random.Random(seed)
        self.dead = False
        self.pending_hangup_line = False
        self.stats = SessionStats()

    @classmethod
    def from_recording(cls, path: Path, *, variables: dict[str, str], **kwargs: Any) -> FakeAsterisk:
        _, records = load_recording(path)
        return cls(environment_chunks(records), citizen_inputs(records), variables=variables, **kwargs)

    # ------------------------------------------------------------------------------- behaviour

    def _next_input(self) -> CitizenInput:
        return self.inputs.popleft() if self.inputs else self.after_inputs

    def _die(self) -> None:
        self.dead = True
        self.pending_hangup_line = True

    def reply_to(self, command: str) -> list[str]:
        """The lines Asterisk would send for ``command`` in the current state of the call."""
        lines: list[str] = []
        if self.pending_hangup_line:  # the unsolicited HANGUP arrives before the next reply
            lines.append("HANGUP\n")
            self.pending_hangup_line = False
        if self.dead:
            if command.startswith("GET VARIABLE"):
                lines.append(self._variable(command))
            elif command.startswith("SET VARIABLE"):
                lines.append(self._set_variable(command))
            elif command.startswith(DEAD_SAFE):
                lines.append("200 result=1\n" if command.startswith(("SET", "VERBOSE")) else "200 result=0\n")
            else:
                lines.append(DEAD_511)
            return lines
        lines.append(self._live_reply(command))
        return lines

    def _variable(self, command: str) -> str:
        name = command.split(" ", 2)[2].strip()
        value = self.variables.get(name)
        return f"200 result=1 ({value})\n" if value is not None else "200 result=0\n"

    def _set_variable(self, command: str) -> str:
        name, _, value = command[len("SET VARIABLE ") :].partition(" ")
        self.variables[name] = value.strip('"')
        return "200 result=1\n"

    def _live_reply(self, command: str) -> str:
        verb = " ".join(command.split(" ", 2)[:2])
        if command == "ANSWER":
            return "200 result=0\n"
        if command.startswith("GET VARIABLE"):
            return self._variable(command)
        if command.startswith("SET VARIABLE"):
            return self._set_variable(command)
        if command == "CHANNEL STATUS":
            return "200 result=6\n"
        if command == "HANGUP":
            self._die()
            return "200 result=1\n"
        if verb == "STREAM FILE":
            escape = command.rsplit(" ", 1)[-1].strip('"')
            if self.barge_in and escape and self.inputs and self.inputs[0].kind == "digits":
                first = self.inputs[0]
                key = first.digits[0]
                rest = first.digits[1:]
                if rest:
                    self.inputs[0] = CitizenInput("digits", rest)
                else:
                    self.inputs.popleft()
                return f"200 result={ord(key)} endpos=1200\n"
            return "200 result=0 endpos=4000\n"
        if command.startswith(INPUT_COMMANDS):
            return self._input_reply(command)
        if command.startswith(("NOOP", "VERBOSE", "EXEC")):
            return "200 result=0\n"
        return "510 Invalid or unknown command\n"

    def _input_reply(self, command: str) -> str:
        item = self._next_input()
        if command.startswith("WAIT FOR DIGIT"):
            if item.kind == "hangup":
                self._die()
                return "200 result=-1\n"
            if item.kind == "digits":
                if len(item.digits) > 1:  # the rest of the keys come with the next WAIT FOR DIGIT
                    self.inputs.appendleft(CitizenInput("digits", item.digits[1:]))
                return f"200 result={ord(item.digits[0])}\n"
            return "200 result=0\n"
        if command.startswith("GET DATA"):
            parts = command.split(" ")
            max_digits = int(parts[4]) if len(parts) > 4 and parts[4].isdigit() else 1024
            if item.kind == "hangup":
                self._die()
                return "200 result=-1\n"
            if item.kind == "digits":
                digits = item.digits.split("#", 1)[0][:max_digits]
                return f"200 result={digits}\n"
            return "200 result= (timeout)\n"
        # RECORD FILE <path> <format> <escape> <timeout> [offset] [BEEP] [s=N]
        path, fmt = command.split(" ")[2:4]
        if item.kind == "hangup":
            self._die()
            self._write_recording(path, fmt, item.endpos or 8000)
            return f"200 result=-1 (hangup) endpos={item.endpos or 8000}\n"
        if item.kind == "recording":
            self._write_recording(path, fmt, item.endpos)
            if item.ended_by == "dtmf":
                return f"200 result=35 (dtmf) endpos={item.endpos}\n"
            return f"200 result=0 (timeout) endpos={item.endpos}\n"
        if item.kind == "digits":
            return f"200 result={ord(item.digits[0])} (dtmf) endpos=800\n"
        return "200 result=0 (timeout) endpos=0\n"

    def _write_recording(self, path: str, fmt: str, samples: int) -> None:
        if not self.write_recordings or fmt != "wav":
            return
        with wave.open(f"{path}.wav", "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(8000)
            out.writeframes(b"\x10\x00\xf0\xff" * (samples // 2))

    # ---------------------------------------------------------------------------------- socket

    async def _send(self, writer: asyncio.StreamWriter, lines: list[str]) -> None:
        payload = "".join(lines)
        if self.garbage and self.random.random() < 0.3:
            payload = self.random.choice(["garbage line\n", "\x07\x07\n", "200result\n"]) + payload
        if self.garbage and self.random.random() < 0.1:
            payload = "100 result=0 Trying...\n" + payload
        data = payload.encode()
        if self.split_writes and len(data) > 3:
            cut = self.random.randint(1, len(data) - 1)
            writer.write(data[:cut])
            await writer.drain()
            await asyncio.sleep(0.001)
            writer.write(data[cut:])
        else:
            writer.write(data)
        await writer.drain()

    async def run(self, host: str, port: int, *, max_commands: int = 500) -> SessionStats:
        """Connect, play the call, and return what the server did; ends when the server closes."""
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for chunk in self.env_chunks:
                writer.write(chunk.encode())
                await writer.drain()
            sent_at = time.perf_counter()
            for _ in range(max_commands):
                line = await reader.readline()
                if not line:
                    self.stats.closed_by_server = True
                    break
                self.stats.reply_times.append(time.perf_counter() - sent_at)
                command = line.decode().rstrip("\n")
                self.stats.commands.append(command)
                if self.think_time:
                    await asyncio.sleep(self.random.uniform(0, 2 * self.think_time))
                await self._send(writer, self.reply_to(command))
                sent_at = time.perf_counter()
            else:
                raise AssertionError(f"server sent more than {max_commands} commands")
            # Asterisk's last word when the server closes: one more HANGUP, then EOF.
            with contextlib.suppress(ConnectionError, OSError):
                writer.write(b"HANGUP\n")
                await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()
        return self.stats
