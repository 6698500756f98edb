"""The campaign domain."""
