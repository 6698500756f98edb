"""Twilio: ``calls.create`` with the IVR webhook and our status callback; request/response, no owner.

The IVR's TwiML webhook (``/ivr/twilio/voice``) gets the attempt and dossier ids as query parameters,
the only thing the IVR needs from the dialer. Call progress comes back to
``/dialer/twilio/status?attempt_id=…`` (:mod:`callcenter.dialer.http`), which checks
``X-Twilio-Signature``. ``calls.create`` is not idempotent, so it is never retried: a network error
or a 5xx leaves the attempt DIALING with no CallSid, and the reaper ends it as failed.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http import HttpClient
from twilio.rest import Client

from callcenter.dialer.adapters.base import DialRequest, OriginateRefused, PlacedCall, TrunkUnavailable
from callcenter.dialer.settings import DialerSettings

IVR_WEBHOOK_PATH = "/ivr/twilio/voice"
STATUS_CALLBACK_PATH = "/dialer/twilio/status"


def e164_from_national(number: str) -> str:
    """``0905123456`` → ``+84905123456`` (Twilio dials E.164)."""
    return "+84" + number[1:] if number.startswith("0") else number


class TwilioTrunk:
    """Places calls through Twilio's REST API (``twilio`` SDK); ``http_client`` is injectable."""

    kind = "twilio"

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        from_number: str,
        base_url: str,
        machine_detection: bool = False,
        ring_timeout_seconds: int = 30,
        http_client: HttpClient | None = None,
    ) -> None:
        self.client = Client(account_sid, auth_token, http_client=http_client)
        self.from_number = from_number
        self.base_url = base_url.rstrip("/")
        self.machine_detection = machine_detection
        self.ring_timeout_seconds = ring_timeout_seconds

    @classmethod
    def from_settings(cls, settings: DialerSettings, *, http_client: HttpClient | None = None) -> TwilioTrunk:
        return cls(
            account_sid=settings.twilio_account_sid,
            auth_token=settings.twilio_auth_token.get_secret_value(),
            from_number=settings.twilio_from_number,
            base_url=settings.twilio_base_url,
            machine_detection=settings.twilio_machine_detection,
            ring_timeout_seconds=max(5, settings.originate_timeout_ms // 1000),
            http_client=http_client,
        )

    def webhook_url(self, request: DialRequest) -> str:
        query = urlencode(
            {"attempt_id": request.attempt_id, "dossier_id": request.dossier_id, "token": request.call_token}
        )
        return f"{self.base_url}{IVR_WEBHOOK_PATH}?{query}"

    def status_callback_url(self, request: DialRequest) -> str:
        return f"{self.base_url}{STATUS_CALLBACK_PATH}?{urlencode({'attempt_id': request.attempt_id})}"

    def originate(self, request: DialRequest) -> PlacedCall:
        """``calls.create``; 5xx and network errors → TrunkUnavailable, 4xx → OriginateRefused."""
        kwargs: dict[str, Any] = {
            "to": e164_from_national(request.number),
            "from_": self.from_number,
            "url": self.webhook_url(request),
            "method": "POST",
            "status_callback": self.status_callback_url(request),
            "status_callback_event": ["initiated", "ringing", "answered", "completed"],
            "status_callback_method": "POST",
            "timeout": self.ring_timeout_seconds,
        }
        if self.machine_detection:
            kwargs["machine_detection"] = "Enable"
        try:
            call = self.client.calls.create(**kwargs)
        except TwilioRestException as exc:
            if exc.status >= 500:
                raise TrunkUnavailable(f"Twilio answered {exc.status}: {exc.msg}") from exc
            raise OriginateRefused(
                f"Twilio refused the call ({exc.status}, code {exc.code}): {exc.msg}"
            ) from exc
        except TwilioException as exc:
            raise TrunkUnavailable(f"Twilio unreachable: {exc}") from exc
        return PlacedCall(provider_call_id=str(call.sid))

    def status(self, provider_call_id: str) -> str | None:
        """The call's current status at Twilio (for the reaper); None when Twilio cannot say."""
        try:
            return str(self.client.calls(provider_call_id).fetch().status)
        except TwilioException:
            return None
