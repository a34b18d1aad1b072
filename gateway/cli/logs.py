"""Where the gateway's log goes: journald under systemd, a terminal otherwise.

systemd hands a service's stderr to the journal and says so in JOURNAL_STREAM (`device:inode` of that stream). A
line there gets the journal's own timestamp, and a `<N>` prefix (sd-daemon(3)) sets its syslog priority, so that
`journalctl -p warning` finds warnings. A child that inherited the variable but writes elsewhere (a terminal, a
pipe) does not match it, and logs as on a terminal: timestamp, level, logger.
"""

from __future__ import annotations

import logging
import os
from typing import TextIO

TERMINAL_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JOURNAL_FORMAT = "%(name)s: %(message)s"

# Python's levels as syslog priorities (sd-daemon.h: SD_CRIT 2, SD_ERR 3, SD_WARNING 4, SD_INFO 6, SD_DEBUG 7).
_PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))


def priority(levelno: int) -> int:
    """The syslog priority of a Python log level; a level between two takes the lower one's priority."""
    return next((p for level, p in _PRIORITIES if levelno >= level), 7)


def under_journal(stream: TextIO) -> bool:
    """True when `stream` is the one systemd connected to the journal (JOURNAL_STREAM names its device and
    inode)."""
    said = os.environ.get("JOURNAL_STREAM", "")
    dev, _, ino = said.partition(":")
    if not (dev.isdigit() and ino.isdigit()):
        return False
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError):  # no descriptor (a StringIO), or a closed one
        return False
    return (st.st_dev, st.st_ino) == (int(dev), int(ino))


class JournalFormatter(logging.Formatter):
    """`<N>logger: message`, every line of it prefixed: journald makes each line an entry of its own, and a
    traceback's lines keep the priority of the record they belong to."""

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines())


def configure(level: int, stream: TextIO) -> None:
    """Send the log at `level` and above to `stream`, formatted for the journal or for a terminal."""
    handler = logging.StreamHandler(stream)
    journal = under_journal(stream)
    handler.setFormatter(JournalFormatter(JOURNAL_FORMAT) if journal else logging.Formatter(TERMINAL_FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
