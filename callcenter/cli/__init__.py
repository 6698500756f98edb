"""The ``callcenter`` command line."""
