"""The 1022 survey caller: automated phone surveys of citizens' satisfaction with public services."""

__version__ = "0.1.0"
