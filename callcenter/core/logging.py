"""Logging set-up: one format, personal data masked in every line written."""

from __future__ import annotations

import logging

from callcenter.core.pii import mask_digit_runs

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class MaskingFormatter(logging.Formatter):
    """Masks phone and ID numbers in the whole formatted record: the message *and* the traceback.

    A filter that rewrites ``record.msg`` cannot reach the traceback of ``log.exception`` (formatted
    later, from ``exc_info``), and an exception's message may quote a number.
    """

    def format(self, record: logging.LogRecord) -> str:
        return mask_digit_runs(super().format(record))


class _MaskingWrapper(logging.Formatter):
    """Another formatter's lines, masked (keeps a server's own format, e.g. uvicorn's access log)."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return mask_digit_runs(self.inner.format(record))


def mask_installed_handlers() -> None:
    """Make every handler already installed mask what it writes, and give the root logger one.

    For processes whose logging a server sets up before our code runs: uvicorn installs its own
    handlers (its access log prints query strings) and none on the root logger, so our modules'
    warnings would go to Python's last-resort handler, unmasked.
    """
    root = logging.getLogger()
    if not root.handlers:  # levels are the server's to set; only the missing handler is added
        stderr = logging.StreamHandler()
        stderr.setFormatter(MaskingFormatter(FORMAT))
        root.addHandler(stderr)
    manager = logging.Logger.manager
    loggers = [root, *(x for x in manager.loggerDict.values() if isinstance(x, logging.Logger))]
    for logger in loggers:
        for handler in logger.handlers:
            if not isinstance(handler.formatter, MaskingFormatter | _MaskingWrapper):
                handler.setFormatter(_MaskingWrapper(handler.formatter or logging.Formatter()))


def configure_logging(level: str | int | None = "INFO") -> None:
    """Install a stderr handler whose lines never carry a full phone or ID number (once per process).

    ``level=None`` keeps the level already set (a forked worker process after the parent's set-up),
    or INFO when this call installs the handler.
    """
    root = logging.getLogger()
    if not any(isinstance(h.formatter, MaskingFormatter) for h in root.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(MaskingFormatter(FORMAT))
        root.addHandler(handler)
        level = level or "INFO"
    if level is None:
        return
    root.setLevel(level)
    # Libraries that narrate every request or migration step at INFO; their warnings still show.
    numeric = level if isinstance(level, int) else logging.getLevelName(level)
    for noisy in ("alembic", "httpx", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, numeric))
