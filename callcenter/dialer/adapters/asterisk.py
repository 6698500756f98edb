"""Asterisk through the AMI, with panoramisk 1.4 (async handlers only), made safe against double calls.

**One owner per connection.** Only the trunk owner process (``callcenter ami-owner``) talks AMI; the
Celery workers never do. Reasons, in the order they matter here:

1. *Events need a home.* An ``Events: on`` session receives every event of the PBX. With N prefork
   workers each holding a session per server, every event would be parsed N times, and the events of
   a call would arrive at whichever process happens to read them, not at the one that placed it.
2. *Calls outlive tasks.* A call rings for 30 s and a survey lasts minutes; a Celery task that waited
   for the Hangup would hold a worker slot per channel (300 channels → 300 blocked workers).
3. *One place to reconcile.* After a reconnect only the session that lost track knows which originates
   are unconfirmed; a single owner can ask ``CoreShowChannels`` once and settle them all.

Large dialers (Vicidial's ``vicidial_manager`` table, Wazo's calld) work the same way: workers write
an outbox, one process owns the manager connection.

**Never a second call.** panoramisk re-sends, after a reconnect, every action that had no reply yet
(``Manager.awaiting_actions``, sent again on ``FullyBooted``). For an ``Originate`` that reply may
simply have been lost with the connection while the call was already placed. :class:`_SafeManager`
therefore treats ``Originate`` as *forgettable* (never queued for re-sending) and refuses to re-send
one even if it got queued, and it does not reconnect by itself: :class:`AsteriskTrunk` reconnects
with tenacity backoff and then reconciles every unconfirmed call by its ``ChannelId`` with
``CoreShowChannels``. A call found alive is followed to its end; a call not found is reported as
lost (the service then looks for survey answers before calling it failed). Nothing is ever re-sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Mapping
from typing import Any

from panoramisk import Manager
from panoramisk.actions import Action
from tenacity import AsyncRetrying, retry_if_exception_type, stop_never, wait_exponential_jitter

from callcenter.core.errors import CallCenterError
from callcenter.core.outcomes import CallOutcome
from callcenter.dialer.adapters.base import CallEvents, DialRequest, TrunkUnavailable
from callcenter.dialer.ami_calls import TRACKED_EVENTS, AmiCall, Progress, call_key
from callcenter.dialer.settings import AsteriskServer
from callcenter.ivr.constants import PRIORITY_SURVEY, VAR_ATTEMPT_ID, VAR_CALL_TOKEN, VAR_DOSSIER_ID

log = logging.getLogger(__name__)


class AmiLoginFailed(CallCenterError):
    """The AMI refused our credentials: a configuration error, never retried."""


class _SafeManager(Manager):  # type: ignore[misc]
    """panoramisk's Manager that never re-sends an Originate and never reconnects on its own."""

    def __init__(self, *, on_lost: Any, **config: Any) -> None:
        config.setdefault("forgetable_actions", ("ping", "login", "logoff", "originate"))
        super().__init__(**config)
        self._on_lost = on_lost

    def connection_lost(self, exc: Exception | None) -> None:
        self._connected = False
        pinger: Any = getattr(self, "pinger", None)
        if pinger is not None:
            pinger.cancel()
            self.pinger = None
        self._on_lost(exc)

    async def send_awaiting_actions(self, *_: Any) -> None:
        # Belt and braces: even if an Originate were queued, it is dropped, not sent twice.
        queued: deque[Any] = getattr(self, "awaiting_actions", deque())
        self.awaiting_actions = deque(a for a in queued if str(a.get("action", "")).lower() != "originate")
        await super().send_awaiting_actions()


class AsteriskTrunk:
    """One Asterisk server of the pool, owned by the trunk owner process."""

    kind = "asterisk"

    def __init__(
        self,
        server: AsteriskServer,
        *,
        context: str,
        exten: str,
        caller_id: str,
        originate_timeout_ms: int,
        reconnect_max_seconds: float = 30.0,
        ping_seconds: int = 10,
    ) -> None:
        self.config = server
        self.server = server.name
        self.context = context
        self.exten = exten
        self.caller_id = caller_id
        self.originate_timeout_ms = originate_timeout_ms
        self.reconnect_max_seconds = reconnect_max_seconds
        self.ping_seconds = ping_seconds
        self._manager: _SafeManager | None = None
        self._events: CallEvents | None = None
        self._calls: dict[str, tuple[AmiCall, int]] = {}  # ChannelId → (call, attempt id)
        self._live_halves: dict[str, set[str]] = {}  # from the last CoreShowChannels
        self._connected = asyncio.Event()
        self._lost = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._closing = False
        self.reconnects = 0

    # --- connection --------------------------------------------------------------------------------

    async def start(self, events: CallEvents) -> None:
        """Connect and log in (raises :class:`AmiLoginFailed` at once on bad credentials)."""
        self._events = events
        await self._connect_with_backoff()
        self._supervisor = asyncio.create_task(self._supervise(), name=f"ami-supervisor-{self.server}")

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def _connect_once(self) -> None:
        loop = asyncio.get_running_loop()
        manager = _SafeManager(
            on_lost=self._connection_lost,
            loop=loop,
            host=self.config.host,
            port=self.config.port,
            username=self.config.username,
            secret=self.config.secret.get_secret_value(),
            events="on",
            ping_delay=self.ping_seconds,
            ping_interval=self.ping_seconds,
        )
        for name in TRACKED_EVENTS:
            manager.register_event(name, self._on_event)
        self._lost.clear()
        try:
            await manager.connect()
        except OSError as exc:
            raise TrunkUnavailable(f"AMI {self.server}: cannot connect ({exc})") from exc
        login = manager.authenticated_future
        if login is None:
            manager.close()
            raise TrunkUnavailable(f"AMI {self.server}: connection closed before login")
        # panoramisk never fails a Login future when the connection drops: wait for either.
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            await asyncio.wait({login, lost}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
        if not login.done():
            manager.close()
            raise TrunkUnavailable(f"AMI {self.server}: no answer to Login")
        response = login.result()
        if not response.success:
            self._closing_manager(manager)
            raise AmiLoginFailed(
                f"AMI {self.server}: login refused ({response.message or response.response})"
            )
        self._manager = manager
        self._lost.clear()
        self._connected.set()
        log.info("AMI %s: logged in", self.server)

    async def _connect_with_backoff(self) -> None:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(TrunkUnavailable),
            wait=wait_exponential_jitter(multiplier=0.2, max=self.reconnect_max_seconds, jitter=0.2),
            stop=stop_never,
            reraise=True,
        ):
            with attempt:
                if self._closing:
                    return
                await self._connect_once()

    def _closing_manager(self, manager: _SafeManager) -> None:
        manager._on_lost = lambda _exc: None  # a refused login is final: no reconnect
        manager.close()

    def _connection_lost(self, exc: Exception | None) -> None:
        self._connected.clear()
        self._lost.set()
        if not self._closing:
            log.warning("AMI %s: connection lost (%s)", self.server, exc or "closed")

    async def _supervise(self) -> None:
        while not self._closing:
            await self._lost.wait()
            if self._closing:
                return
            self.reconnects += 1
            await self._connect_with_backoff()
            await self.reconcile()

    async def close(self) -> None:
        self._closing = True
        self._lost.set()
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        if self._manager is not None:
            self._manager.close()
        for task in list(self._background):
            task.cancel()

    # --- calls -------------------------------------------------------------------------------------

    async def originate(self, request: DialRequest) -> None:
        """Send one ``Originate`` (Async) into the IVR context; outcome arrives through the events."""
        manager = self._manager
        if manager is None or not self.connected:
            raise TrunkUnavailable(f"AMI {self.server}: not connected")
        call = AmiCall(channel_id=request.channel_id, action_id=f"originate-{request.attempt_id}")
        self._calls[request.channel_id] = (call, request.attempt_id)
        action = Action(
            {
                "Action": "Originate",
                "ActionID": call.action_id,
                "Channel": self.config.dial_template.format(number=request.number),
                "Context": self.context,
                "Exten": self.exten,
                "Priority": str(PRIORITY_SURVEY),
                "Async": "true",
                "Timeout": str(self.originate_timeout_ms),
                "CallerID": self.caller_id,
                "ChannelId": request.channel_id,
                "Variable": [
                    f"{VAR_ATTEMPT_ID}={request.attempt_id}",
                    f"{VAR_DOSSIER_ID}={request.dossier_id}",
                    f"{VAR_CALL_TOKEN}={request.call_token}",
                ],
            }
        )
        future = manager.send_action(action)
        self._spawn(self._await_originate(call, request.attempt_id, future))

    async def _await_originate(self, call: AmiCall, attempt_id: int, future: asyncio.Future[Any]) -> None:
        try:
            result = await future
        except asyncio.CancelledError:
            return
        if isinstance(result, list):
            # [Response: Success "Originate successfully queued", Event: OriginateResponse]
            await self._progress(call, attempt_id, call.apply_originate_response(result[-1]))
            return
        if not result.success:
            # Refused outright (e.g. "Channel not specified"): nothing was placed.
            self._calls.pop(call.channel_id, None)
            detail = f"originate refused: {result.message or result.response}"
            if self._events is not None:
                await self._events.ended(attempt_id, CallOutcome.FAILED, detail=detail)

    async def _on_event(self, manager: Manager, event: Mapping[str, str]) -> None:
        key = call_key(event)
        entry = self._calls.get(key) if key else None
        if entry is None:
            return
        call, attempt_id = entry
        await self._progress(call, attempt_id, call.feed(event))

    async def _progress(self, call: AmiCall, attempt_id: int, progress: Progress) -> None:
        events = self._events
        if events is None or progress is Progress.NOTHING:
            return
        if progress is Progress.RINGING:
            await events.ringing(attempt_id)
        elif progress is Progress.ANSWERED:
            await events.answered(attempt_id)
        elif progress is Progress.ENDED:
            self._calls.pop(call.channel_id, None)
            outcome, cause = call.result()
            await events.ended(attempt_id, outcome, cause=cause)

    async def adopt(self, channel_id: str, attempt_id: int, *, answered: bool) -> None:
        """Follow a call an earlier owner placed; its OriginateResponse is long gone.

        The halves the PBX listed in the last ``CoreShowChannels`` must all hang up before it is over.
        """
        call = AmiCall(channel_id=channel_id, originate_reason_lost=True, answered=answered)
        call.halves.update(self._live_halves.get(channel_id, ()))
        call.reported.update({Progress.RINGING, Progress.ANSWERED} if answered else set())
        self._calls[channel_id] = (call, attempt_id)

    @property
    def tracked(self) -> dict[str, int]:
        return {cid: attempt for cid, (_, attempt) in self._calls.items()}

    async def live_channels(self) -> set[str] | None:
        """ChannelIds (Linkedids) of every call the PBX has now, from ``CoreShowChannels``."""
        manager = self._manager
        if manager is None or not self.connected:
            return None
        try:
            reply = await asyncio.wait_for(manager.send_action({"Action": "CoreShowChannels"}), timeout=10)
        except (TimeoutError, asyncio.CancelledError):
            return None
        messages = reply if isinstance(reply, list) else [reply]
        halves: dict[str, set[str]] = {}
        for message in messages:
            if message.get("Event") == "CoreShowChannel":
                uniqueid = message.get("Uniqueid") or ""
                key = message.get("Linkedid") or uniqueid.split(";", 1)[0]
                if key:
                    halves.setdefault(key, set()).add(uniqueid or key)
        self._live_halves = halves
        return set(halves)

    async def reconcile(self) -> None:
        """After a reconnect: settle every call we were following, by ChannelId, without re-sending."""
        if not self._calls or self._events is None:
            return
        live = await self.live_channels()
        if live is None:
            return  # lost again; the next reconnect tries again
        for channel_id, (call, attempt_id) in list(self._calls.items()):
            if channel_id in live:
                # Still up: keep following it. Its OriginateResponse may have gone with the old session,
                # and a half created while we were away must still hang up before the call is over.
                call.originate_reason_lost = call.originate_reason is None
                call.halves.update(self._live_halves.get(channel_id, ()))
                continue
            self._calls.pop(channel_id, None)
            if call.over or call.originate_reason is not None or call.answered:
                outcome, cause = call.result()
                detail = "ended while the AMI was disconnected"
            else:
                outcome, cause = CallOutcome.FAILED, None
                detail = "originate unconfirmed after an AMI reconnect and no such channel; not re-sent"
            await self._events.ended(attempt_id, outcome, cause=cause, detail=detail)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
