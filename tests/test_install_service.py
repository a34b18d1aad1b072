"""`campus-edge install-service`: the unit it writes, verified by systemd's own tool, and the service user."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from gateway.base.i18n import set_language
from gateway.cli.main import main

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
SYSTEM_UNITS = Path("/usr/lib/systemd/system")


@pytest.fixture(autouse=True)
def english() -> None:
    """Each test starts in English, whatever the machine's locale."""
    set_language("en")


def unit_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_install_service_dry_run_prints_the_unit(capsys: pytest.CaptureFixture[str]) -> None:
    """--dry-run prints a notify unit with a watchdog, the run subcommand, its own user and the sandbox."""
    code = main(["install-service", "--dry-run", "--exec", "/opt/campus-edge/.venv/bin/campus-edge", "--lang", "en"])
    assert code == 0
    lines = unit_lines(capsys.readouterr().out)
    for expected in (
        "Type=notify",
        "WatchdogSec=30",
        "Restart=always",
        "ExecStart=/opt/campus-edge/.venv/bin/campus-edge run --config /etc/campus-edge/gateway.toml",
        "User=campus-edge",
        "SupplementaryGroups=dialout gpio",
        "StateDirectory=campus-edge",
        "ConfigurationDirectory=campus-edge",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=",
        "WantedBy=multi-user.target",
    ):
        assert expected in lines


def test_install_service_paths_and_user_are_options(capsys: pytest.CaptureFixture[str]) -> None:
    """Another user, config and state dir; a state dir outside /var/lib is made writable by path instead."""
    code = main([
        "install-service", "--dry-run", "--exec", "/usr/local/bin/campus-edge", "--user", "gw",
        "--config", "/etc/school/gw.toml", "--state-dir", "/srv/campus-edge", "--watchdog-s", "20",
    ])  # fmt: skip
    assert code == 0
    lines = unit_lines(capsys.readouterr().out)
    assert "ExecStart=/usr/local/bin/campus-edge run --config /etc/school/gw.toml" in lines
    assert "User=gw" in lines
    assert "WatchdogSec=20" in lines
    assert "ReadWritePaths=/srv/campus-edge" in lines
    assert "ConfigurationDirectory=school" in lines
    assert not [line for line in lines if line.startswith("StateDirectory")]


def test_install_service_executable_in_a_home_keeps_homes_readable(capsys: pytest.CaptureFixture[str]) -> None:
    """A clone in /home/pi would be hidden by ProtectHome=yes: the unit makes homes read-only instead."""
    assert main(["install-service", "--dry-run", "--exec", "/home/pi/campus-edge/.venv/bin/campus-edge"]) == 0
    lines = unit_lines(capsys.readouterr().out)
    assert "ProtectHome=read-only" in lines
    assert "ProtectHome=yes" not in lines


def test_install_service_refuses_relative_paths(capsys: pytest.CaptureFixture[str]) -> None:
    """A relative path means nothing to systemd: refused, naming the option, in the installer's language."""
    assert main(["install-service", "--dry-run", "--config", "gateway.toml", "--lang", "en"]) == 2
    assert capsys.readouterr().err == "campus-edge: --config needs an absolute path, got gateway.toml\n"
    assert main(["install-service", "--dry-run", "--config", "gateway.toml", "--lang", "zh-CN"]) == 2
    assert capsys.readouterr().err == "campus-edge: --config 需要绝对路径, 实际为 gateway.toml\n"


def install_into(root: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    code = main(["install-service", "--root", str(root), "--exec", "/usr/bin/campus-edge", "--lang", "en", *extra])
    out = capsys.readouterr().out
    assert code == 0, out
    return out


def test_install_service_into_a_root_writes_unit_user_and_enablement(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Under --root: the unit, the sysusers entry, the user in dialout and gpio there, enabled by its symlink."""
    root = tmp_path / "image"
    out = install_into(root, capsys)
    unit = root / "etc/systemd/system/campus-edge.service"
    assert "Type=notify" in unit.read_text()
    assert (root / "etc/sysusers.d/campus-edge.conf").read_text().splitlines()[1:] == [
        'u campus-edge - "campus-edge gateway" /var/lib/campus-edge /usr/sbin/nologin',
        "g gpio -",
        "m campus-edge dialout",
        "m campus-edge gpio",
    ]
    wants = root / "etc/systemd/system/multi-user.target.wants/campus-edge.service"
    assert wants.readlink() == Path("/etc/systemd/system/campus-edge.service")
    assert (root / "etc/campus-edge").is_dir()
    assert f"installed into {root}; the service starts when that system boots" in out.splitlines()
    if shutil.which("systemd-sysusers") is not None:
        groups = {line.split(":")[0]: line.split(":")[3] for line in (root / "etc/group").read_text().splitlines()}
        assert groups["gpio"] == "campus-edge"
        assert groups["dialout"] == "campus-edge"
        assert any(line.startswith("campus-edge:") for line in (root / "etc/passwd").read_text().splitlines())


def test_install_service_warns_when_the_config_keeps_state_elsewhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A site configuration whose state_dir the sandbox would make read-only is pointed out."""
    root = tmp_path / "image"
    (root / "etc/campus-edge").mkdir(parents=True)
    (root / "etc/campus-edge/gateway.toml").write_text('[gateway]\nid = "gw-1"\nstate_dir = "/data/gw"\n')
    out = install_into(root, capsys)
    assert (
        "warning: /etc/campus-edge/gateway.toml keeps its state in /data/gw, but the service may write only in "
        "/var/lib/campus-edge; use the same directory in both (--state-dir)"
    ) in out.splitlines()
    assert "put the site configuration" not in out


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed (Debian package systemd)")
@pytest.mark.skipif(not (SYSTEM_UNITS / "sysinit.target").exists(), reason="no systemd units in /usr/lib/systemd")
@pytest.mark.parametrize("exec_path", ["/usr/bin/campus-edge", "/home/pi/campus-edge/.venv/bin/campus-edge"])
def test_install_service_unit_passes_systemd_analyze_verify(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], exec_path: str
) -> None:
    """systemd's own checker takes the unit without a warning, in a root holding the units it depends on."""
    root = tmp_path / "image"
    main(["install-service", "--root", str(root), "--exec", exec_path])
    capsys.readouterr()
    # verify --root resolves the unit's dependencies (sysinit.target, ...) and its ExecStart inside the root.
    shutil.copytree(SYSTEM_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    executable = root / exec_path.lstrip("/")
    executable.parent.mkdir(parents=True, exist_ok=True)
    executable.write_text("#!/bin/sh\n")
    executable.chmod(0o755)
    assert SYSTEMD_ANALYZE is not None
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", f"--root={root}", "campus-edge.service"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert (result.returncode, result.stderr, result.stdout) == (0, "", "")


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed (Debian package systemd)")
@pytest.mark.skipif(not (SYSTEM_UNITS / "sysinit.target").exists(), reason="no systemd units in /usr/lib/systemd")
def test_install_service_verify_catches_a_missing_executable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The check above can fail: an ExecStart that is not in the root is reported."""
    root = tmp_path / "image"
    main(["install-service", "--root", str(root), "--exec", "/usr/bin/campus-edge"])
    capsys.readouterr()
    shutil.copytree(SYSTEM_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    assert SYSTEMD_ANALYZE is not None
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", f"--root={root}", "campus-edge.service"],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert "/usr/bin/campus-edge is not executable" in result.stderr
