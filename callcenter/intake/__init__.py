"""Intake: dossiers pulled from the province's one-stop system (API or export files)."""
