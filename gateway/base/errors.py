"""Errors of the gateway layer."""

from __future__ import annotations

import errno
from collections.abc import Sequence

from drivers.errors import GatewayError
from gateway.base.i18n import N_, Message, language

__all__ = ["ConfigError", "GatewayError", "NewerStoreError", "StoreError", "os_reason"]


class ConfigError(GatewayError):
    """The site configuration is invalid; the message is `file:line: key: what was expected`, one line for each
    problem of the file, so that an installer mends them all in one go.

    The file, line and key stay as written; the problem is a Message, so the same error reads in the installer's
    language on their terminal and in English in the service's log (`str()` follows the active language). `line`,
    `key` and `problem` are the first problem's; `more` holds the others, each `(line, key, problem)`.
    """

    def __init__(
        self,
        file: str,
        line: int | None,
        key: str,
        problem: Message,
        more: Sequence[tuple[int | None, str, Message]] = (),
    ) -> None:
        self.file = file
        self.line = line
        self.key = key
        self.problem = problem
        self.more = tuple(more)
        super().__init__(self.render("en"))

    @property
    def expected(self) -> str:
        """The problem alone, in the active language."""
        return str(self.problem)

    def render(self, lang: str) -> str:
        """`file:line: key: problem` with the problem in `lang`, a line for each problem."""
        problems = ((self.line, self.key, self.problem), *self.more)
        return "\n".join(self._render_one(line, key, problem, lang) for line, key, problem in problems)

    def _render_one(self, line: int | None, key: str, problem: Message, lang: str) -> str:
        where = f"{self.file}:{line}" if line is not None else self.file
        said = problem.render(lang)
        return f"{where}: {key}: {said}" if key else f"{where}: {said}"

    def __str__(self) -> str:
        return self.render(language())


class StoreError(GatewayError):
    """The durable outbox could not be opened or written."""


class NewerStoreError(StoreError):
    """A store (the outbox, a state file) written by a newer gateway than this one: after a downgrade. Refused, and
    left as it is: this gateway cannot read it, and moving it aside would lose what the newer one kept.

    The message is in English and then in Chinese: it stops the service, and whoever reads its log reads one.
    """

    def __init__(self, path: str, version: int, supported: int) -> None:
        self.path = path
        self.version = version
        self.supported = supported
        super().__init__(self.render("en"))

    def render(self, lang: str) -> str:
        """The refusal in `lang`."""
        return Message(
            N_("{path}: written by a newer campus-edge (version {version}); this gateway reads up to version "
               "{supported}. Install the newer gateway again; the file is left as it is"),
            path=self.path, version=self.version, supported=self.supported,
        ).render(lang)  # fmt: skip

    def __str__(self) -> str:
        return f"{self.render('en')}\n{self.render('zh-CN')}"


# The operating system's reasons an installer meets when a file named in the configuration cannot be read; their
# English is the C library's own, so the English text stays as it was.
_OS_REASONS = {
    errno.ENOENT: N_("No such file or directory"),
    errno.EACCES: N_("Permission denied"),
    errno.EISDIR: N_("Is a directory"),
    errno.ENOTDIR: N_("Not a directory"),
}


def os_reason(exc: OSError) -> Message:
    """Why a file could not be opened, translatable for the common reasons, the system's English otherwise."""
    if exc.errno in _OS_REASONS:
        return Message(_OS_REASONS[exc.errno])
    return Message.untranslated(exc.strerror or str(exc))
