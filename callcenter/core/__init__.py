"""Shared building blocks: settings, database, personal-data protection, phones, clocks."""
