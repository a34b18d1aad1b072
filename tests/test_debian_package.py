"""The Debian package: built by scripts/package, installed on this machine, run against the simulated site from the
installed files, upgraded over itself with messages waiting in the outbox, and purged.

It changes the machine (a package, a system user), so it runs only as root on Debian and when asked to
(CAMPUS_EDGE_TEST_PACKAGE=1, as .ci/run does), and purges in a finally whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import json
import os
import pwd
import shutil
import signal
import subprocess
import tomllib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from simulators.broker import PrivateBroker
from simulators.devices import FirePanelSim
from simulators.modbus_server import SimServer
from tests.gateway_harness import config_text

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "campus/v1/test-school/gw-1"
CONFIG = Path("/etc/campus-edge/gateway.toml")
STATE = Path("/var/lib/campus-edge")
OPT = Path("/opt/campus-edge")
USER = "campus-edge"
# Only the installed files: no checkout, no virtualenv of the tests on any path.
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive"}
UNIT_LINKS = (
    Path("/usr/lib/systemd/system/campus-edge.service"),
    Path("/etc/systemd/system/multi-user.target.wants/campus-edge.service"),
)
AS_SERVICE_USER = ["setpriv", f"--reuid={USER}", f"--regid={USER}", "--init-groups", "--"]
# Read by the service user with the installed Python: a reader of another user could leave WAL files it cannot open.
QUEUED = (
    "import json, sqlite3; print(json.dumps([r[0] for r in sqlite3.connect('{db}').execute('SELECT seq FROM outbox')]))"
)
BUILD_S = 900  # scripts/package with the wheelhouse: about a minute here, more on a slow mirror
STEP_S = 120


def why_not_here() -> str | None:
    """Why this machine cannot host the test, if it cannot."""
    if os.environ.get("CAMPUS_EDGE_TEST_PACKAGE") != "1":
        return "installs a Debian package on this machine: set CAMPUS_EDGE_TEST_PACKAGE=1 (CI does, as root on Debian)"
    if not Path("/etc/debian_version").exists() or shutil.which("dpkg-deb") is None:
        return "needs Debian (dpkg)"
    if os.geteuid() != 0:
        return "needs root (dpkg -i, the service user)"
    query = ["dpkg-query", "-W", "-f=${Status}", "campus-edge"]
    status = subprocess.run(query, capture_output=True, text=True, check=False)
    if "installed" in status.stdout:
        return "campus-edge is installed on this machine; the test would replace it"
    for path in (OPT, CONFIG.parent):
        if path.exists():
            return f"{path} exists; the test would change it"
    if STATE.exists() and any(STATE.iterdir()):
        return f"{STATE} holds files; the test would remove them"
    with contextlib.suppress(KeyError):
        pwd.getpwnam(USER)
        return f"the user {USER} exists; the test would remove it"
    return None


WHY_NOT = why_not_here()
SYSTEMD_RUNS = Path("/run/systemd/system").is_dir()
# An empty state directory made by something else (a default state_dir) is put back as it was after the purge.
EMPTY_STATE_BEFORE = STATE.stat() if WHY_NOT is None and STATE.exists() else None
GPIO_GROUP_BEFORE = any(g.gr_name == "gpio" for g in grp.getgrall())
pytestmark = [pytest.mark.slow, pytest.mark.package, pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or "")]


async def run_cmd(*argv: str | Path, timeout_s: float = STEP_S) -> tuple[int | None, str]:
    """Run a command with the clean environment: its exit code and its output (stdout and stderr)."""
    proc = await asyncio.create_subprocess_exec(
        *map(str, argv), env=ENV, cwd="/", stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        async with asyncio.timeout(timeout_s):
            out, _ = await proc.communicate()
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    return proc.returncode, out.decode()


async def sh(*argv: str | Path, timeout_s: float = STEP_S) -> str:
    """The output of a command that must succeed; a failure shows it."""
    code, text = await run_cmd(*argv, timeout_s=timeout_s)
    assert code == 0, f"{' '.join(map(str, argv))} exited {code}:\n{text}"
    return text


async def queued() -> list[int]:
    """The sequence numbers waiting in the installed gateway's outbox."""
    return list(json.loads(await sh(*AS_SERVICE_USER, OPT / "bin/python", "-c", QUEUED.format(db=STATE / "outbox.db"))))


async def until(predicate: Callable[[], Awaitable[bool]], timeout_s: float = 30.0) -> None:
    """Poll a condition on files outside this process (the outbox of another process) until it holds."""
    async with asyncio.timeout(timeout_s):
        while not await predicate():  # noqa: ASYNC110 (another process's files: nothing here to wait on)
            await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def installed_gateway() -> AsyncIterator[asyncio.subprocess.Process]:
    """`campus-edge run` from /usr/bin as the service user, stopped with SIGTERM as systemd stops it."""
    proc = await asyncio.create_subprocess_exec(
        *AS_SERVICE_USER, "/usr/bin/campus-edge", "run", "--config", str(CONFIG), env=ENV, cwd="/",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(30):
                await proc.wait()
        finally:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()


def seqs_of(messages: list[tuple[str, dict[str, Any]]]) -> set[int]:
    """Every sequence number that reached the platform: events carry one, telemetry one per reading."""
    seen = set()
    for _topic, payload in messages:
        for item in [payload, *payload.get("readings", [])]:
            if isinstance(item, dict) and isinstance(item.get("seq"), int):
                seen.add(item["seq"])
    return seen


def assert_installed() -> None:
    """What the package and its postinst put in place."""
    assert Path("/usr/bin/campus-edge").resolve() == OPT / "bin/campus-edge"
    assert Path("/usr/lib/systemd/system/campus-edge.service").is_file()
    assert Path("/etc/systemd/system/multi-user.target.wants/campus-edge.service").is_symlink()
    assert Path("/etc/campus-edge/gateway.toml.example").is_file()
    assert not CONFIG.exists()
    user = pwd.getpwnam(USER)
    assert {g.gr_name for g in grp.getgrall() if USER in g.gr_mem} >= {"dialout", "gpio"}
    st = STATE.stat()
    assert (st.st_uid, st.st_mode & 0o7777) == (user.pw_uid, 0o711)


async def test_debian_package_installs_runs_upgrades_and_purges(tmp_path: Path, subscriber_factory: Any) -> None:
    """apt installs the .deb; check-config and run work from the installed files; an upgrade keeps the queued
    outbox, which is then delivered whole; purge leaves nothing of the package, its user or its directories."""
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    dist = tmp_path / "dist"
    built = await sh(ROOT / "scripts/package", "--dist", dist, timeout_s=BUILD_S)
    [deb] = dist.glob("campus-edge_*.deb")
    assert (dist / f"campus-edge-offline-{version}.tar.gz").is_file()
    assert f"{deb.name}: " in built  # its size
    booted = SYSTEMD_RUNS
    try:
        out = await sh("apt-get", "install", "-y", "--no-install-recommends", deb)
        if not booted:
            assert "campus-edge: systemd is not running here: no gateway started;" in out
        assert_installed()
        broker = PrivateBroker(tmp_path / "broker")
        broker.start()
        panel = FirePanelSim()
        try:
            async with SimServer.tcp({1: panel}) as server:
                host, port = server.address
                site = config_text(
                    STATE, broker.url, [{"id": "tcp-1", "type": "tcp", "host": host, "port": port}],
                    [{"id": "facp-1", "bus": "tcp-1", "unit": 1, "profile": "fire_panel", "poll_interval_s": 0.1}],
                )  # fmt: skip
                await asyncio.to_thread(CONFIG.write_text, site)
                out = await sh(*AS_SERVICE_USER, "campus-edge", "check-config", CONFIG, "--lang", "en")
                assert out == f"{CONFIG}: ok (1 buses, 1 devices, 0 inputs)\n"

                sub = await subscriber_factory(broker.url, f"{PREFIX}/#")
                async with installed_gateway():
                    await sub.wait_for(lambda t, p: t == f"{PREFIX}/status" and p["state"] == "online")
                    panel.alarm_point(4)
                    await sub.wait_for(lambda t, p: t == f"{PREFIX}/event/fire" and p["state"] == "raised")
                    broker.stop()
                    panel.alarm_point(5)
                    panel.clear_point(4)

                    async def waiting() -> bool:
                        return len(await queued()) > 0

                    await until(waiting)
                before = await queued()
                assert before

                await sh("dpkg", "-i", deb)  # the upgrade over itself, with the outbox full
                assert await queued() == before
                broker.start()
                sub = await subscriber_factory(broker.url, f"{PREFIX}/#")
                if booted:  # postinst started the service: the configuration passes
                    await sub.wait_for(lambda t, p: set(before) <= seqs_of(sub.messages), timeout_s=60)
                else:
                    async with installed_gateway():
                        await sub.wait_for(lambda t, p: set(before) <= seqs_of(sub.messages), timeout_s=60)

                        async def emptied() -> bool:
                            return not set(before) & set(await queued())

                        await until(emptied)
        finally:
            broker.stop()
    finally:
        code, purged = await run_cmd("dpkg", "--purge", "campus-edge")
    assert code == 0, purged
    assert_purged()


def assert_purged() -> None:
    """Nothing of the package, its directories, its user or the group it made is left."""
    for path in (OPT, CONFIG.parent, STATE, Path("/usr/bin/campus-edge"), *UNIT_LINKS):
        assert not path.is_symlink(), f"{path} is left after purge"
        assert not path.exists(), f"{path} is left after purge"
    with pytest.raises(KeyError):
        pwd.getpwnam(USER)
    assert any(g.gr_name == "gpio" for g in grp.getgrall()) == GPIO_GROUP_BEFORE  # made by the package, gone with it


@pytest.fixture(autouse=True)
def restore_empty_state_dir() -> Iterator[None]:
    """Put back the empty state directory this machine had before, with its owner and mode."""
    yield
    if EMPTY_STATE_BEFORE is not None and not STATE.exists():
        STATE.mkdir()
        os.chown(STATE, EMPTY_STATE_BEFORE.st_uid, EMPTY_STATE_BEFORE.st_gid)
        STATE.chmod(EMPTY_STATE_BEFORE.st_mode & 0o7777)
