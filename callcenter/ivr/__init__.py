"""The ivr domain."""
