"""Where one-line progress messages go when the caller passes no ``log`` function: stderr.

Results go to stdout or files; messages never do (DESIGN.md §2, exit codes), so a table piped into
another tool stays clean.
"""

from __future__ import annotations

import sys


def stderr_log(message: str) -> None:
    """Print ``message`` as one line on stderr (looked up at call time, so redirection and test
    capture see it)."""
    print(message, file=sys.stderr)
