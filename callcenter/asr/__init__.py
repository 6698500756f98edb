"""The asr domain."""
