"""Notifier protocol and its two implementations: a signed webhook (HMAC-SHA256) and e-mail over SMTP.

A notifier raises :class:`~callcenter.core.errors.TransientError` for what may pass (connection refused,
timeout, HTTP 5xx/429, SMTP 4xx) and :class:`PermanentDeliveryError` for what will not (HTTP 4xx, SMTP
5xx, a bad address or a URL the HTTP client cannot use). Each message carries a stable id
(``X-1022-Alert-Id`` header, e-mail ``Message-ID``) so a receiver can drop the duplicate that an
at-least-once retry after a crash might produce.
"""

from __future__ import annotations

import hashlib
import hmac
import smtplib
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import Protocol

import httpx

from callcenter.core.errors import CallCenterError, TransientError

SIGNATURE_HEADER = "X-1022-Signature"
TIMESTAMP_HEADER = "X-1022-Timestamp"
ALERT_ID_HEADER = "X-1022-Alert-Id"


class PermanentDeliveryError(CallCenterError):
    """The receiver refused the message for good; retrying would not help."""


@dataclass(frozen=True)
class Outgoing:
    """One message to deliver: the JSON body for a webhook and the text for an e-mail."""

    message_id: str  # stable across retries
    subject: str
    text: str
    json_body: bytes


@dataclass(frozen=True)
class Destination:
    target: str  # URL or e-mail address
    secret: str | None  # HMAC key of a webhook


class Notifier(Protocol):
    kind: str

    def send(self, message: Outgoing, destination: Destination) -> None:
        """Deliver one message or raise TransientError / PermanentDeliveryError."""
        ...


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256 over ``"<timestamp>." + body``: what the receiver recomputes."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(
    secret: str, timestamp: str, body: bytes, signature: str, *, now: float, tolerance: int = 300
) -> bool:
    """The receiver's check (also documented for agencies): right key, and not a replay of an old call."""
    if abs(now - int(timestamp)) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def webhook_url_problem(url: str) -> str | None:
    """Why the webhook client could not post to ``url`` (None if it can): checked at subscribe time.

    httpx parses the URL (a letter O in the port fails here); the host name must also survive the
    IDNA encoding the socket layer applies when connecting (``sxd..danang.gov.vn`` has an empty label).
    """
    if not url or any(c.isspace() for c in url):
        return "it is empty or contains spaces"
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        return str(exc)
    if parsed.scheme not in ("http", "https"):
        return "it must start with http:// or https://"
    if not parsed.host:
        return "it has no host name"
    try:
        parsed.raw_host.decode("ascii").encode("idna")
    except UnicodeError:
        return f"host name '{parsed.host}' has an empty or over-long label"
    return None


class WebhookNotifier:
    kind = "webhook"

    def __init__(self, *, timeout: float = 5.0, transport: httpx.BaseTransport | None = None) -> None:
        self._client = httpx.Client(timeout=timeout, transport=transport)

    def send(self, message: Outgoing, destination: Destination) -> None:
        if not destination.secret:
            raise PermanentDeliveryError("webhook subscription has no signing secret")
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            ALERT_ID_HEADER: message.message_id,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(destination.secret, timestamp, message.json_body),
        }
        try:
            response = self._client.post(destination.target, content=message.json_body, headers=headers)
        except (httpx.InvalidURL, httpx.UnsupportedProtocol, UnicodeError) as exc:
            # A mistyped URL (stored before it was checked at subscribe time) will never work.
            raise PermanentDeliveryError(
                f"webhook {destination.target}: unusable URL ({type(exc).__name__}: {exc})"
            ) from exc
        except httpx.TransportError as exc:
            raise TransientError(f"webhook {destination.target}: {type(exc).__name__}") from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise TransientError(f"webhook {destination.target}: HTTP {response.status_code}")
        if response.status_code >= 400:
            raise PermanentDeliveryError(f"webhook {destination.target}: HTTP {response.status_code}")

    def close(self) -> None:
        self._client.close()


class EmailNotifier:
    kind = "email"

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        starttls: bool = False,
        user: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._host, self._port, self._sender = host, port, sender
        self._starttls, self._user, self._password, self._timeout = starttls, user, password, timeout

    def send(self, message: Outgoing, destination: Destination) -> None:
        mail = EmailMessage()
        mail["From"] = self._sender
        mail["To"] = destination.target
        mail["Subject"] = message.subject
        mail["Date"] = formatdate(localtime=False)
        mail["Message-ID"] = f"<{message.message_id}@1022.danang.gov.vn>"
        mail.set_content(message.text)
        try:
            with smtplib.SMTP(self._host, self._port, timeout=self._timeout) as smtp:
                if self._starttls:
                    smtp.starttls()
                if self._user:
                    smtp.login(self._user, self._password or "")
                smtp.send_message(mail)
        except smtplib.SMTPRecipientsRefused as exc:
            raise PermanentDeliveryError(f"e-mail to {destination.target} refused") from exc
        except smtplib.SMTPResponseException as exc:
            if 400 <= exc.smtp_code < 500:
                raise TransientError(f"SMTP {exc.smtp_code}") from exc
            raise PermanentDeliveryError(f"SMTP {exc.smtp_code}") from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise TransientError(f"SMTP {self._host}:{self._port}: {type(exc).__name__}") from exc
