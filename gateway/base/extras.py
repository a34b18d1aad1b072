"""The optional parts of campus-edge and the libraries they need (pyproject.toml's extras).

A gateway installs what every site runs (scripts/bootstrap --runtime; tests/test_runtime_footprint.py keeps it small);
a feature whose library is an extra is imported only when it is asked for, and then says which extra to install.
"""

from __future__ import annotations

import importlib.util

from gateway.base.errors import GatewayError
from gateway.base.i18n import N_, Message

# extra -> (the modules it brings, the feature that needs them); the same lists as pyproject.toml's extras.
EXTRAS: dict[str, tuple[tuple[str, ...], str]] = {
    "watch": (("jsonschema",), N_("campus-edge watch (it checks every message against the contract's JSON Schemas)")),
    "panel": (("aiohttp",), N_("the gate-house panel ([panel] in the configuration)")),
    "metrics": (("aiohttp", "prometheus_client"), N_("the metrics endpoint (metrics_port in [health])")),
}


class MissingExtra(GatewayError):
    """A feature was asked for whose extra is not installed; the text says how to install it, in English and zh-CN.

    Both at once: `campus-edge watch` has no language of its own, and a service log is read by whoever is there.
    """

    def __init__(self, extra: str, missing: tuple[str, ...]) -> None:
        self.extra = extra
        self.missing = missing
        self.message = Message(
            N_("{feature} needs {modules}, which is not installed here: pip install 'campus-edge[{extra}]'"),
            feature=Message(EXTRAS[extra][1]),
            modules=", ".join(missing),
            extra=extra,
        )
        super().__init__(self.message.render("en"))

    def __str__(self) -> str:
        return f"{self.message.render('en')}\n{self.message.render('zh-CN')}"


def require(extra: str) -> None:
    """Raise MissingExtra unless every module of `extra` can be imported (found, not yet imported)."""
    missing = tuple(m for m in EXTRAS[extra][0] if importlib.util.find_spec(m) is None)
    if missing:
        raise MissingExtra(extra, missing)
