"""Every recorded Asterisk 22 AMI transcript, replayed over TCP to the real panoramisk Manager.

The fake server (``ami_server``) sends the recorded bytes in their recorded segmentation and order;
the client under test is :class:`AsteriskTrunk` with panoramisk 1.4 underneath. Each scenario must
end in exactly one outcome with the right Q.850 cause, whatever the position of OriginateResponse.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from callcenter.core.outcomes import CallOutcome
from callcenter.dialer.adapters.asterisk import AmiLoginFailed, AsteriskTrunk
from callcenter.dialer.adapters.base import DialRequest
from callcenter.dialer.settings import AsteriskServer
from tests.dialer.ami_server import FakeAmi, Transcript

EXPECTED: dict[str, tuple[CallOutcome, int | None, bool]] = {
    # file: (outcome, Q.850 cause, answered)
    "ami-answer.jsonl": (CallOutcome.ANSWERED, 0, True),
    "ami-answer-comment-hangup.jsonl": (CallOutcome.ANSWERED, 16, True),
    "ami-answer-partial.jsonl": (CallOutcome.ANSWERED, 16, True),
    "ami-answered-silent.jsonl": (CallOutcome.ANSWERED, 0, True),
    "ami-hangup-after-1s.jsonl": (CallOutcome.ANSWERED, 16, True),
    "ami-agi-misc-commands.jsonl": (CallOutcome.ANSWERED, 0, True),
    "ami-busy.jsonl": (CallOutcome.BUSY, 17, False),
    "ami-congestion.jsonl": (CallOutcome.CONGESTION, 34, False),
    "ami-no-answer.jsonl": (CallOutcome.NO_ANSWER, 19, False),
    "ami-no-answer-callee-gives-up.jsonl": (CallOutcome.NO_ANSWER, 19, False),
    "ami-no-such-extension.jsonl": (CallOutcome.INVALID_NUMBER, 0, False),
    "order-variants/ami-busy.origresp-between-hangups.jsonl": (CallOutcome.BUSY, 17, False),
    "order-variants/ami-congestion.origresp-before-dialend.jsonl": (CallOutcome.CONGESTION, 34, False),
    "order-variants/ami-hangup-after-1s.origresp-before-dialend.jsonl": (CallOutcome.ANSWERED, 16, True),
    "order-variants/ami-no-such-extension.origresp-after-hangups.jsonl": (
        CallOutcome.INVALID_NUMBER,
        0,
        False,
    ),
    "order-variants/ami-no-such-extension.origresp-first.jsonl": (CallOutcome.INVALID_NUMBER, 0, False),
}


@pytest.fixture(scope="module")
def fixtures(shared_dir: Path) -> Path:
    return shared_dir / "fixtures" / "asterisk"


def test_every_call_transcript_is_covered(fixtures: Path) -> None:
    recorded = {
        str(p.relative_to(fixtures))
        for p in [*fixtures.glob("ami-*.jsonl"), *fixtures.glob("order-variants/ami-*.jsonl")]
    }
    # login-failure and misc-actions place no call; they have their own tests below.
    assert recorded - set(EXPECTED) == {"ami-login-failure.jsonl", "ami-misc-actions.jsonl"}


@dataclass
class RecordingEvents:
    log: list[tuple[str, int]] = field(default_factory=list)
    endings: list[tuple[int, CallOutcome, int | None, str | None]] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    async def ringing(self, attempt_id: int) -> None:
        self.log.append(("ringing", attempt_id))

    async def answered(self, attempt_id: int) -> None:
        self.log.append(("answered", attempt_id))

    async def ended(
        self, attempt_id: int, outcome: CallOutcome, *, cause: int | None = None, detail: str | None = None
    ) -> None:
        self.log.append(("ended", attempt_id))
        self.endings.append((attempt_id, outcome, cause, detail))
        self.done.set()


def _trunk(port: int, secret: str = "dialer-secret") -> AsteriskTrunk:
    server = AsteriskServer(
        name="pbx1", port=port, secret=secret, dial_template="Local/{number}@citizen-sim", max_channels=5
    )
    return AsteriskTrunk(
        server,
        context="survey",
        exten="s",
        caller_id='"1022" <1022>',
        originate_timeout_ms=30000,
        reconnect_max_seconds=0.5,
    )


TOKEN = "Zm9yZ2VkLWJ5LW5vYm9keQ"  # a call token (callcenter.ivr.call_token), carried as it is


def _request(number: str, attempt_id: int = 41) -> DialRequest:
    return DialRequest(
        attempt_id=attempt_id,
        dossier_id=77,
        channel_id=str(uuid.uuid4()),
        number=number,
        server="pbx1",
        call_token=TOKEN,
    )


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recorded_call_maps_to_one_outcome(fixtures: Path, name: str) -> None:
    transcript = Transcript.load(fixtures / name)
    number = str(transcript.meta["number"])
    outcome, cause, answered = EXPECTED[name]

    async def scenario() -> tuple[RecordingEvents, FakeAmi, DialRequest]:
        fake = FakeAmi({number: transcript}, login=transcript)
        port = await fake.start()
        trunk = _trunk(port)
        events = RecordingEvents()
        try:
            await trunk.start(events)
            request = _request(number)
            await trunk.originate(request)
            await asyncio.wait_for(events.done.wait(), timeout=10)
            await asyncio.sleep(0.05)  # any late event must not produce a second ending
        finally:
            await trunk.close()
            await fake.stop()
        return events, fake, request

    events, fake, request = asyncio.run(scenario())
    assert events.endings == [(41, outcome, cause, None)]
    assert ("answered", 41) in events.log if answered else ("answered", 41) not in events.log
    # What went over the wire: one Originate, async, into the IVR context, ids on the channel.
    assert len(fake.originates) == 1
    sent = fake.originates[0]
    assert sent["async"] == "true" and sent["context"] == "survey" and sent["exten"] == "s"
    assert sent["channelid"] == request.channel_id
    assert sent["channel"] == f"Local/{number}@citizen-sim"
    assert sorted(sent["variable"].split("\n")) == ["ATTEMPT_ID=41", f"CALL_TOKEN={TOKEN}", "DOSSIER_ID=77"]


def test_login_failure_is_permanent_and_not_retried(fixtures: Path) -> None:
    failure = Transcript.load(fixtures / "ami-login-failure.jsonl")
    good = Transcript.load(fixtures / "ami-busy.jsonl")
    assert failure.login_closes

    async def scenario() -> float:
        fake = FakeAmi({"__login_failure__": failure}, login=good, time_scale=1.0)
        port = await fake.start()
        trunk = _trunk(port, secret="wrong")
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            with pytest.raises(AmiLoginFailed, match="Authentication failed"):
                await trunk.start(RecordingEvents())
            return loop.time() - started
        finally:
            await trunk.close()
            await fake.stop()

    elapsed = asyncio.run(scenario())
    assert 0.9 <= elapsed < 3  # Asterisk answers a wrong secret after ~1 s; we give up at once


def test_refused_originate_ends_as_failed_without_a_call(fixtures: Path) -> None:
    good = Transcript.load(fixtures / "ami-busy.jsonl")

    async def scenario() -> RecordingEvents:
        fake = FakeAmi({}, login=good)
        port = await fake.start()
        trunk = _trunk(port)
        events = RecordingEvents()
        try:
            await trunk.start(events)
            await trunk.originate(_request("0900000999"))
            await asyncio.wait_for(events.done.wait(), timeout=5)
        finally:
            await trunk.close()
            await fake.stop()
        return events

    events = asyncio.run(scenario())
    assert events.endings == [(41, CallOutcome.FAILED, None, "originate refused: Extension does not exist.")]


@pytest.mark.parametrize("hold_at", [0, 2])
def test_dropped_ami_connection_never_sends_a_second_originate(fixtures: Path, hold_at: int) -> None:
    """Drop the AMI session mid-call; panoramisk must not re-send, the call is reconciled by ChannelId.

    hold_at=0: the session dies before even "Originate successfully queued" arrives, and the call
    ends while we are away → FAILED ("unconfirmed"), never re-sent. hold_at=2: the call is still
    ringing when we are back → followed to its real end (no answer, cause 19), its OriginateResponse
    arriving as a plain event on the new session.
    """
    transcript = Transcript.load(fixtures / "ami-no-answer.jsonl")
    number = str(transcript.meta["number"])

    async def scenario() -> tuple[RecordingEvents, FakeAmi, AsteriskTrunk]:
        fake = FakeAmi({number: transcript}, login=transcript)
        port = await fake.start()
        trunk = _trunk(port)
        events = RecordingEvents()
        request = _request(number)
        fake.hold_after[request.channel_id] = hold_at
        try:
            await trunk.start(events)
            await trunk.originate(request)
            await asyncio.sleep(0.1)
            fake.reject_connections = True
            fake.drop_sessions()
            if hold_at == 0:
                fake.hold_after.pop(request.channel_id)  # the call plays out while we are away
                while fake.calls[request.channel_id].alive:
                    await asyncio.sleep(0.01)
            await asyncio.sleep(0.3)  # a few refused reconnects, with backoff
            fake.reject_connections = False
            while not trunk.connected:
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.1)
            fake.hold_after.pop(request.channel_id, None)
            await asyncio.wait_for(events.done.wait(), timeout=10)
            await asyncio.sleep(0.1)
        finally:
            await trunk.close()
            await fake.stop()
        return events, fake, trunk

    events, fake, trunk = asyncio.run(scenario())
    assert len(fake.originates) == 1
    assert trunk.reconnects == 1
    assert len(events.endings) == 1
    if hold_at == 0:
        assert events.endings[0][1] is CallOutcome.FAILED
        assert "not re-sent" in (events.endings[0][3] or "")
    else:
        assert events.endings[0][:3] == (41, CallOutcome.NO_ANSWER, 19)


def test_live_channels_lists_calls_by_channel_id(fixtures: Path) -> None:
    transcript = Transcript.load(fixtures / "ami-no-answer.jsonl")
    number = str(transcript.meta["number"])

    async def scenario() -> tuple[set[str] | None, set[str] | None, str]:
        fake = FakeAmi({number: transcript}, login=transcript)
        port = await fake.start()
        trunk = _trunk(port)
        request = _request(number)
        fake.hold_after[request.channel_id] = 2
        try:
            await trunk.start(RecordingEvents())
            empty = await trunk.live_channels()
            await trunk.originate(request)
            await asyncio.sleep(0.1)
            live = await trunk.live_channels()
        finally:
            await trunk.close()
            await fake.stop()
        return empty, live, request.channel_id

    empty, live, channel_id = asyncio.run(scenario())
    assert empty == set()
    assert live == {channel_id}


def test_a_new_owner_adopts_a_call_still_up_and_follows_it_to_its_end(fixtures: Path) -> None:
    """An owner restarted mid-call: the PBX still lists both halves of the ringing call."""
    transcript = Transcript.load(fixtures / "ami-no-answer.jsonl")
    number = str(transcript.meta["number"])

    async def scenario() -> tuple[RecordingEvents, FakeAmi]:
        fake = FakeAmi({number: transcript}, login=transcript)
        port = await fake.start()
        first, second = _trunk(port), _trunk(port)
        request = _request(number)
        fake.hold_after[request.channel_id] = 2  # ringing; the Originate timeout has not hit yet
        try:
            await first.start(RecordingEvents())
            await first.originate(request)
            await asyncio.sleep(0.1)
            await first.close()  # the old owner dies
            events = RecordingEvents()
            await second.start(events)
            assert await second.live_channels() == {request.channel_id}
            await second.adopt(request.channel_id, request.attempt_id, answered=False)
            fake.hold_after.pop(request.channel_id)
            await asyncio.wait_for(events.done.wait(), timeout=10)
        finally:
            await second.close()
            await fake.stop()
        return events, fake

    events, fake = asyncio.run(scenario())
    assert len(fake.originates) == 1
    assert events.endings == [(41, CallOutcome.NO_ANSWER, 19, None)]
