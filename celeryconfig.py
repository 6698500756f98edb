"""Celery configuration (loaded by ``callcenter.celery_app``). Values come from the environment.

Named queues: ``intake`` (one-stop sync), ``dialer`` (placing calls), ``dialer_control`` (the dialer's
beat tasks), ``events`` (call outcomes),
``asr`` (transcribing comments), ``analysis`` (alerts, reports). Tasks take ids, re-read their rows and
are idempotent, so ``acks_late`` is safe.
"""

import os

broker_url = os.environ.get("CALLCENTER_BROKER_URL") or os.environ.get(
    "CALLCENTER_REDIS_URL", "redis://127.0.0.1:6379/0"
)
result_backend = None
task_ignore_result = True
task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
task_serializer = "json"
accept_content = ["json"]
timezone = "Asia/Ho_Chi_Minh"
enable_utc = True
broker_connection_retry_on_startup = True
# Redis redelivers an unacknowledged task after the visibility timeout; no task of ours runs longer,
# and no retry is ever scheduled with a countdown near it (due times live in the database).
broker_transport_options = {"visibility_timeout": 3600}

include = [
    "callcenter.intake.tasks",
    "callcenter.asr.tasks",
    "callcenter.analysis.tasks",
    "callcenter.campaign.tasks",
    "callcenter.dialer.tasks",
]

task_routes = {
    # The dialer's periodic tasks get their own queue so thousands of place_call tasks never delay them.
    "dialer.release_due": {"queue": "dialer_control"},
    "dialer.reap": {"queue": "dialer_control"},
    "intake.*": {"queue": "intake"},
    "dialer.*": {"queue": "dialer"},
    "events.*": {"queue": "events"},
    "asr.*": {"queue": "asr"},
    "analysis.*": {"queue": "analysis"},
}

# Celery's default scheduler busy-waits the last 10 ms before each entry (~1 % of a core with an
# entry every second): see callcenter/beat_scheduler.py.
beat_scheduler = "callcenter.beat_scheduler:NoSpinScheduler"
beat_schedule: dict[str, dict[str, object]] = {}

# Intake: periodic one-stop API sync (skips itself when the previous run is still going).
beat_schedule["intake-sync-api"] = {
    "task": "intake.sync_api",
    "schedule": float(os.environ.get("CALLCENTER_INTAKE_SYNC_INTERVAL_SECONDS", "900")),
    "options": {"queue": "intake", "expires": 600},
}

# Analysis: the alert sweep (unalerted unsatisfied answers, due retries, due digests) and anomaly checks.
# Overlapping runs are harmless: alerts change state by compare-and-set and anomalies are unique.
beat_schedule["analysis-send-alerts"] = {
    "task": "analysis.send_alerts",
    "schedule": float(os.environ.get("CALLCENTER_ANALYSIS_SWEEP_INTERVAL_SECONDS", "10")),
    "options": {"queue": "analysis", "expires": 60},
}
beat_schedule["analysis-detect-anomalies"] = {
    "task": "analysis.detect_anomalies",
    "schedule": 3600.0,
    "options": {"queue": "analysis", "expires": 1800},
}

# Campaigns: start scheduled campaigns at their start time, complete them at their end (idempotent).
beat_schedule["campaign-tick"] = {
    "task": "campaign.tick",
    "schedule": 60.0,
    "options": {"queue": "events", "expires": 55},
}

# Dialer: release due targets every second (skips itself while a run is going, expires if stale),
# and reap stuck attempts. Intervals come from the dialer's settings names.
beat_schedule["dialer-release-due"] = {
    "task": "dialer.release_due",
    "schedule": float(os.environ.get("CALLCENTER_DIALER_RELEASE_INTERVAL_SECONDS", "1")),
    "options": {"queue": "dialer_control", "expires": 5},
}
beat_schedule["dialer-reap"] = {
    "task": "dialer.reap",
    "schedule": float(os.environ.get("CALLCENTER_DIALER_REAP_INTERVAL_SECONDS", "10")),
    "options": {"queue": "dialer_control", "expires": 30},
}

# Speech: transcribe recorded comments left pending (a task lost, or sent before a worker had an engine).
beat_schedule["asr-transcribe-pending"] = {
    "task": "asr.transcribe_pending",
    "schedule": float(os.environ.get("CALLCENTER_ASR_SWEEP_INTERVAL_SECONDS", "60")),
    "options": {"queue": "asr", "expires": 55},
}
