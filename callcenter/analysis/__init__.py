"""The analysis domain."""
