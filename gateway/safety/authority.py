"""Who asks for a decision, in the safety order of DESIGN.md: the lanes, the site's modes, the panel and the
control socket all rank their askers by it."""

from __future__ import annotations

from enum import IntEnum


class Authority(IntEnum):
    """Who asks; lower numbers win (DESIGN.md, safety order). The controller and the interlocks are not askers."""

    GUARD = 3  # physical inputs at the gate house, the local panel, the CLI on the gateway
    FIRE = 4  # fire linkage
    PLATFORM = 5  # signed commands from the platform or a guard station
    SCHEDULE = 6  # closed-campus hours
