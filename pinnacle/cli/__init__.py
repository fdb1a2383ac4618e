"""The ``pinnacle`` command: a demo, and the tools to look at and run a database's components.

The only module of pinnacle that prints. Library code logs; here the ``pinnacle`` logger
is set to INFO so that the library's progress bars show (``--quiet`` hides them, and
``--verbose`` also shows its log lines and the traceback of an error).

Example:
    >>> from pinnacle.cli import main
    >>> main(["--db", "sqlite://", "ls"])
    No components in sqlite://.
    0
"""

from pinnacle.cli.app import main

__all__ = ["main"]
