"""A token that ties a call to the attempt and the dossier the dialer placed it for.

The IVR knows a call only by the ids its channel hands over: AGI channel variables, or the query of
Twilio's voice webhook. Without a check, anything that reaches the AGI port (or a dialplan that
routes another call into the survey context) could store answers for an attempt never placed, or
for another citizen's dossier, and they would count in the figures given to Home Affairs. The dialer
signs (attempt, dossier) with a key derived from the PII key, which both sides hold; the IVR surveys
no call whose token does not match. Pure functions: no database, no settings.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

_LABEL = b"1022-ivr-call-token-v1"


def call_token_key(pii_key: bytes) -> bytes:
    """The signing key, derived from the PII key (never the PII key itself)."""
    return hmac.new(pii_key, _LABEL, hashlib.sha256).digest()


def call_token(key: bytes, *, attempt_id: int, dossier_id: int) -> str:
    """22 URL- and dialplan-safe characters (128 bits of HMAC-SHA256)."""
    mac = hmac.new(key, f"{attempt_id}:{dossier_id}".encode(), hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def verify_call_token(key: bytes, *, attempt_id: int, dossier_id: int, token: str | None) -> bool:
    """Whether ``token`` is the one the dialer made for this attempt and dossier (constant time)."""
    if not token:
        return False
    expected = call_token(key, attempt_id=attempt_id, dossier_id=dossier_id)
    return hmac.compare_digest(expected.encode(), token.strip().encode())
