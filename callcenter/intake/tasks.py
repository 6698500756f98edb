"""Intake Celery tasks (filled in by the intake work)."""
