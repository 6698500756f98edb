"""The AGI reply reader against exact replays of real Asterisk 22 sessions (../shared/fixtures)."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import pytest

from callcenter.ivr.agi import (
    AGICommandFailed,
    AGIConnectionClosed,
    AGIDeadChannel,
    AGIError,
    AGIHangup,
    AGIInvalidCommand,
    AGIProtocolError,
    AgiRequest,
    AGIUsageError,
    parse_reply,
    read_agi_environment,
)
from callcenter.ivr.agi_testing import command_exchanges, load_recording


@pytest.fixture(scope="module")
def fixtures(shared_dir: Path) -> Path:
    return shared_dir / "fixtures" / "asterisk"


@pytest.mark.parametrize(
    ("line", "code", "result", "data", "endpos"),
    [
        ("200 result=0", 200, "0", None, None),
        ("200 result=1 (1001)", 200, "1", "1001", None),
        ("200 result= (timeout)", 200, "", "timeout", None),
        ("200 result=2 (timeout)", 200, "2", "timeout", None),
        ("200 result=35 (dtmf) endpos=6400", 200, "35", "dtmf", 6400),
        ("200 result=-1 (hangup) endpos=8000", 200, "-1", "hangup", 8000),
        ("200 result=0 endpos=4000", 200, "0", None, 4000),
        ("200 result=1 (Local/0900000010@citizen-sim-0000000a;1|1010)", 200, "1",
         "Local/0900000010@citizen-sim-0000000a;1|1010", None),
        ("511 Command Not Permitted on a dead channel or intercept routine", 511, "", None, None),
        ("510 Invalid or unknown command", 510, "", None, None),
    ],
)  # fmt: skip
def test_parse_reply(line: str, code: int, result: str, data: str | None, endpos: int | None) -> None:
    reply = parse_reply(line)
    assert (reply.code, reply.result, reply.data, reply.endpos) == (code, result, data, endpos)


@pytest.mark.parametrize("line", ["HANGUP", "garbage", "200result=1", "20 result=1"])
def test_parse_reply_refuses_non_replies(line: str) -> None:
    with pytest.raises(AGIProtocolError):
        parse_reply(line)


class Replayer:
    """Plays Asterisk's side of a recording: env chunks, then the recorded reply to each command."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records
        self.exchanges = command_exchanges(records)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = (r for r in self.records if "data" in r and r["dir"] == "in")
        env_done = False
        for (_, _chunk), group in itertools.groupby(data, key=lambda r: (r["dir"], r["chunk"])):
            payload = "".join(r["data"] for r in group)
            writer.write(payload.encode())
            await writer.drain()
            if payload.endswith("\n\n") or payload == "\n":
                env_done = True
                break
        assert env_done
        for command, replies in self.exchanges:
            line = await reader.readline()
            if not line:
                break
            assert line.decode().rstrip("\n") == command
            # replay with the recorded chunking, including the 40 ms gap inside 520 replies
            for i, reply in enumerate(replies):
                writer.write(reply.encode())
                await writer.drain()
                if reply.startswith("520-") and i == 0:
                    await asyncio.sleep(0.04)
        writer.close()


async def replay(path: Path) -> list[Any]:
    """Send the recorded commands through AgiRequest; return each reply or exception, in order."""
    _, records = load_recording(path)
    replayer = Replayer(records)
    outcomes: list[Any] = []
    done = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        headers = await read_agi_environment(reader)
        outcomes.append(dict(headers))
        request = AgiRequest(app=None, headers=headers, reader=reader, writer=writer, reply_timeout=5)
        for command, _ in replayer.exchanges:
            try:
                outcomes.append(await request.command(command))
            except AGIError as exc:
                outcomes.append(exc)
        outcomes.append(request.hung_up)
        writer.close()
        done.set()

    # Here the roles are swapped for convenience: our AgiRequest runs in the accepting side's
    # handler and the replayer connects to it, which is exactly Asterisk connecting to FastAGI.
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await replayer.serve(reader, writer)
    await asyncio.wait_for(done.wait(), 10)
    server.close()
    await server.wait_closed()
    return outcomes


def test_replay_full_answer(fixtures: Path) -> None:
    env, *replies, hung_up = asyncio.run(replay(fixtures / "agi-answer.jsonl"))
    assert env["agi_network_script"] == "survey" and env["agi_accountcode"] == ""
    assert len(env) == 22
    assert [r.result for r in replies] == ["0", "1", "0", "2", "52", "13", "35", "1", "1"]
    assert replies[1].data == "1001" and replies[6].data == "dtmf" and replies[6].endpos == 6400
    assert hung_up is False  # the last HANGUP comes after our HANGUP's reply: not read


def test_replay_hangup_after_one_second(fixtures: Path) -> None:
    *_, get_data, wait_for_digit, get_data2, record, set_var, hangup, hung_up = asyncio.run(
        replay(fixtures / "agi-hangup-after-1s.jsonl")
    )
    assert get_data.result == "-1"
    # the bare HANGUP line is skipped (not taken as a reply), and 511 is a hang-up error
    assert isinstance(wait_for_digit, AGIDeadChannel) and isinstance(wait_for_digit, AGIHangup)
    assert isinstance(get_data2, AGIDeadChannel) and isinstance(record, AGIDeadChannel)
    assert set_var.code == 200 and set_var.result == "1"  # dead-channel-safe
    assert isinstance(hangup, AGIDeadChannel)
    assert hung_up is True


def test_replay_hangup_between_command_and_reply(fixtures: Path) -> None:
    # ">> SET VARIABLE", "<< HANGUP", "<< 200 result=1": the reply still belongs to SET VARIABLE.
    *_, record, set_var, hangup, hung_up = asyncio.run(replay(fixtures / "agi-answer-comment-hangup.jsonl"))
    assert (record.result, record.data, record.endpos) == ("-1", "hangup", 8000)
    assert set_var.result == "1"
    assert isinstance(hangup, AGIDeadChannel) and hung_up is True


def test_replay_silent_citizen(fixtures: Path) -> None:
    _, _, _, _, get_data, wait, get_data2, record, *_ = asyncio.run(
        replay(fixtures / "agi-answered-silent.jsonl")
    )
    assert (get_data.result, get_data.data) == ("", "timeout")
    assert wait.result == "0" and get_data2.data == "timeout"
    assert (record.result, record.data, record.endpos) == ("0", "timeout", 0)


def test_replay_misc_commands(fixtures: Path) -> None:
    outcomes = asyncio.run(replay(fixtures / "agi-misc-commands.jsonl"))
    (_, answer, foo, get_data, wait, stream_missing, get_data_missing, unset, attempt, full, status,
     exec_, verbose, noop, set_var, get_var, hangup, noop2, get_var2, status2, hung_up) = outcomes  # fmt: skip  # noqa: E501
    assert [r.result for r in (answer, exec_, verbose, noop, set_var)] == ["0", "0", "1", "0", "1"]
    assert isinstance(foo, AGIInvalidCommand)
    assert isinstance(get_data, AGIUsageError) and "Proper usage follows" in get_data.usage
    assert "End of proper usage." in get_data.usage and "<replaceable>file</replaceable>" in get_data.usage
    assert isinstance(wait, AGIUsageError)  # the 520 body came in another chunk 40 ms later
    assert stream_missing.result == "-1" and stream_missing.endpos == 0
    assert get_data_missing.result == "-1"
    assert unset.result == "0" and unset.data is None
    assert attempt.data == "1010" and full.data == "Local/0900000010@citizen-sim-0000000a;1|1010"
    assert status.result == "6" and get_var.data == "x y"
    assert hangup.result == "1" and noop2.result == "0"  # the HANGUP line before it is skipped
    assert get_var2.data == "x y" and isinstance(status2, AGIDeadChannel) and hung_up is True


async def _with_peer(script: bytes, action: Any) -> Any:
    """Run ``action(request)`` against a peer that writes ``script`` then closes."""
    result: list[Any] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = AgiRequest(app=None, headers={}, reader=reader, writer=writer, reply_timeout=2)
        try:
            result.append(await action(request))
        except AGIError as exc:
            result.append(exc)
        writer.close()

    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    _, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
    writer.write(script)
    await writer.drain()
    writer.write_eof()
    for _ in range(100):
        if result:
            break
        await asyncio.sleep(0.02)
    writer.close()
    server.close()
    return result[0]


def test_garbage_and_trying_lines_are_skipped() -> None:
    script = b"junk\n\x00\x01\n100 result=0 Trying...\n200 result=4\n"
    reply = asyncio.run(_with_peer(script, lambda r: r.command("GET DATA x 1000 1")))
    assert reply.result == "4"


def test_endless_garbage_is_a_protocol_error() -> None:
    reply = asyncio.run(_with_peer(b"junk\n" * 60, lambda r: r.command("NOOP")))
    assert isinstance(reply, AGIProtocolError)


def test_closed_socket_is_a_hangup() -> None:
    reply = asyncio.run(_with_peer(b"200 resu", lambda r: r.command("NOOP")))
    assert isinstance(reply, AGIConnectionClosed) and isinstance(reply, AGIHangup)


def test_minus_one_on_a_live_channel_is_a_failure_not_a_hangup() -> None:
    script = b"200 result=-1 endpos=0\n200 result=6\n"
    reply = asyncio.run(_with_peer(script, lambda r: r.channel_command('STREAM FILE nope ""')))
    assert isinstance(reply, AGICommandFailed) and not isinstance(reply, AGIHangup)


def test_minus_one_then_hangup_line_is_a_hangup() -> None:
    script = b"200 result=-1\nHANGUP\n511 Command Not Permitted on a dead channel or intercept routine\n"
    reply = asyncio.run(_with_peer(script, lambda r: r.channel_command("GET DATA p 5000 1")))
    assert isinstance(reply, AGIHangup)


def test_environment_cut_short_is_refused() -> None:
    async def run() -> Any:
        reader = asyncio.StreamReader()
        reader.feed_data(b"agi_network: yes\nagi_network_script: survey\n")
        reader.feed_eof()
        return await read_agi_environment(reader)

    with pytest.raises(AGIConnectionClosed):
        asyncio.run(run())
