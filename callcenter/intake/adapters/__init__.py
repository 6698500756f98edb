"""Connectors to the one-stop system: its REST API and the export files agencies produce.

Every connector yields :class:`~callcenter.intake.adapters.base.SourceRow` objects — the source's
values already mapped to dossier field names — one at a time, so nothing is ever loaded whole.
"""
