"""The dialer domain."""
