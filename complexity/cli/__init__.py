"""The command line: one module per command (see :mod:`complexity.cli.main`)."""
