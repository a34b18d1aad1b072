"""Build a release into dist/: wheel and sdist, the Debian package, and the offline bundle (run by scripts/package).

The Debian package holds a virtualenv under /opt/campus-edge made with Debian's own Python (/usr/bin/python3.X,
which the package depends on), with the project's wheel and its declared runtime dependencies from PyPI, pinned by
constraints/runtime.txt, with the extras an appliance runs (EXTRAS: the gate-house panel and the metrics endpoint).
Compiled dependencies are this machine's: the .deb's architecture is `dpkg --print-architecture`,
so an arm64 package is built on an arm64 machine. The service files (unit, sysusers.d entry) are rendered by the
packaged `gateway.cli.install_service` itself, so the package runs what `campus-edge install-service` would write.

The offline bundle adds a wheelhouse for aarch64 and x86_64 (`pip download --platform`), checked: every runtime
requirement, with its markers evaluated for the target, has a wheel there for each platform, or the build fails.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path, PurePath, PurePosixPath

from packaging.requirements import Requirement
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import canonicalize_name, parse_wheel_filename

ROOT = Path(__file__).resolve().parent.parent
RELEASE = ROOT / "release"
PREFIX = PurePosixPath("/opt/campus-edge")
NAME = "campus-edge"
CONSTRAINTS = ROOT / "constraints" / "runtime.txt"  # the runtime's pins (constraints/dev.txt adds the tools)
EXTRAS = ("panel", "metrics")  # what a gateway on site runs beside the runtime: the guards' panel, the metrics endpoint
SYSTEM_PYTHON = Path("/usr/bin/python3")
# Debian 12 and Raspberry Pi OS 12 have glibc 2.36: every manylinux tag up to it, named one by one, because pip
# matches PEP 600 tags (manylinux_2_34_aarch64, lgpio's) exactly and silently skips a wheel whose tag is not named.
GLIBC_MINOR = (17, 36)
PLATFORMS = ("aarch64", "x86_64")
TARGET_PYTHON = (3, 11)
TARGET_XY = f"{TARGET_PYTHON[0]}.{TARGET_PYTHON[1]}"

# Runs inside the staged virtualenv (-I: its own site-packages, never the checkout).
RENDER = """
import json, sys
from pathlib import PurePosixPath
from gateway.cli.install_service import ServiceSpec, render_sysusers, render_unit
spec = ServiceSpec(PurePosixPath(sys.argv[1]))
print(json.dumps({"unit": render_unit(spec), "sysusers": render_sysusers(spec), "user": spec.user,
                  "state_dir": str(spec.state_dir), "config": str(spec.config), "unit_file": spec.unit_file}))
"""


class PackageError(Exception):
    """The release cannot be built as asked; the message says what is missing."""


def run(argv: Sequence[str | PurePath], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run a build step; its output goes to ours, a failure names the command."""
    try:
        return subprocess.run([str(a) for a in argv], check=True, text=True, **kwargs)  # type: ignore[call-overload,no-any-return]
    except FileNotFoundError as exc:
        raise PackageError(f"{argv[0]}: not found") from exc
    except subprocess.CalledProcessError as exc:
        raise PackageError(f"{' '.join(str(a) for a in argv)} failed with exit code {exc.returncode}") from exc


def project_version() -> str:
    """The version pyproject.toml declares."""
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return str(data["project"]["version"])


def debian_version(version: str) -> str:
    """A PEP 440 version as dpkg orders it: pre-releases and dev releases sort before the release (1.0~rc1)."""
    return re.sub(r"\.?(a|b|rc|dev)(\d+)", r"~\1\2", version)


def build_dists(dist: Path, version: str) -> tuple[Path, Path]:
    """The sdist and, built from it, the wheel (python -m build)."""
    run([sys.executable, "-m", "build", "--quiet", "--outdir", dist, ROOT])
    wheel = dist / f"campus_edge-{version}-py3-none-any.whl"
    sdist = dist / f"campus_edge-{version}.tar.gz"
    for path in (wheel, sdist):
        if not path.is_file():
            raise PackageError(f"python -m build did not write {path}")
    return wheel, sdist


def system_python() -> tuple[Path, str]:
    """Debian's Python (never a pyenv or a virtualenv), and its X.Y."""
    if not SYSTEM_PYTHON.exists():
        raise PackageError(f"{SYSTEM_PYTHON} is missing: the package is built with Debian's python3")
    exe = SYSTEM_PYTHON.resolve()
    out = run([exe, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True).stdout
    return exe, out.strip()


def _text_files(directory: Path) -> Iterator[Path]:
    for path in sorted(directory.iterdir()):
        if path.is_file() and not path.is_symlink() and b"\0" not in path.read_bytes()[:1024]:
            yield path


def build_venv(stage: Path, wheel: Path) -> str:
    """The virtualenv at stage/opt/campus-edge, as if made at /opt/campus-edge; returns the Python X.Y it needs."""
    python, xy = system_python()
    venv = stage / str(PREFIX).lstrip("/")
    run([python, "-m", "venv", "--without-pip", venv])
    # The project's own declared runtime dependencies, pinned as the constraints file pins them; pip from the build
    # environment installs into the venv, which so carries no pip of its own.
    run([
        sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "--no-compile", "--quiet",
        "--no-warn-script-location", "--constraint", CONSTRAINTS, f"{wheel}[{','.join(EXTRAS)}]",
    ])  # fmt: skip
    # A virtualenv knows its path: scripts' #! lines, activate, pyvenv.cfg. Rewrite them for /opt/campus-edge.
    for path in [*_text_files(venv / "bin"), venv / "pyvenv.cfg"]:
        text = path.read_text(encoding="utf-8")
        if str(venv) in text:
            path.write_text(text.replace(str(venv), str(PREFIX)), encoding="utf-8")
    shutil.rmtree(venv / "bin" / "__pycache__", ignore_errors=True)
    # Byte code made now, with the installed paths in it, so that the service (read-only /opt) never makes any.
    compileall: list[str | PurePath] = [venv / "bin" / "python", "-I", "-B", "-m", "compileall", "-f", "-q", "-j", "0"]
    run([*compileall, "-s", stage, "-p", "/", venv / "lib"])
    leaks = [str(p.relative_to(stage)) for p in venv.rglob("*") if p.is_file() and not p.is_symlink()
             and str(stage).encode() in p.read_bytes()]  # fmt: skip
    if leaks:
        raise PackageError(f"the virtualenv still names its build directory {stage} in: {', '.join(leaks[:10])}")
    return xy


@dataclass(frozen=True, slots=True)
class ServiceFiles:
    """What the packaged install_service renders for the packaged executable."""

    unit: str
    sysusers: str
    user: str
    state_dir: str
    config: str
    unit_file: str


def service_files(stage: Path) -> ServiceFiles:
    """Render the unit and the sysusers.d entry with the packaged code (the same text install-service writes)."""
    python = stage / str(PREFIX).lstrip("/") / "bin" / "python"
    out = run([python, "-I", "-c", RENDER, PREFIX / "bin" / NAME], capture_output=True, cwd=stage).stdout
    return ServiceFiles(**json.loads(out))


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)


def lay_out(stage: Path, svc: ServiceFiles) -> None:
    """Everything besides the virtualenv: the command on PATH, the service, the example configuration."""
    (stage / "usr/bin").mkdir(parents=True)
    (stage / "usr/bin" / NAME).symlink_to(PREFIX / "bin" / NAME)
    _write(stage / "usr/lib/systemd/system" / svc.unit_file, svc.unit)
    _write(stage / "usr/lib/sysusers.d/campus-edge.conf", svc.sysusers)
    _write(
        stage / "usr/lib/tmpfiles.d/campus-edge.conf",
        "# The state directory (the outbox, the alarm book, the audit): the unit's StateDirectory= mode, also where\n"
        "# systemd does not run the service (a container) or before its first start.\n"
        f"d {svc.state_dir} 0711 {svc.user} {svc.user} -\n",
    )
    # No site configuration, no gateway: the unit is enabled at installation but waits for the file (a condition,
    # not a failure, so no restart loop at boot). A file that is there but wrong fails loudly as before.
    _write(
        stage / "usr/lib/systemd/system" / f"{svc.unit_file}.d" / "10-package.conf",
        "# From the campus-edge package: the gateway starts once its configuration is written (campus-edge init).\n"
        f"[Unit]\nConditionPathExists={svc.config}\n",
    )
    example = PurePosixPath(svc.config).parent / "gateway.toml.example"
    _write(stage / str(example).lstrip("/"), (RELEASE / "debian" / "gateway.toml.example").read_text(encoding="utf-8"))
    _write(stage / "usr/share/doc" / NAME / "README.md", (ROOT / "README.md").read_text(encoding="utf-8"))
    guide = (ROOT / "docs" / "installer-guide.md").read_text(encoding="utf-8")
    _write(stage / "usr/share/doc" / NAME / "installer-guide.md", guide)


def _normalise_modes(stage: Path) -> None:
    """0755 directories and executables, 0644 the rest, whatever the build machine's umask."""
    for path in [stage, *stage.rglob("*")]:
        if path.is_symlink():
            continue
        if path.is_dir() or path.stat().st_mode & 0o111:
            path.chmod(0o755)
        else:
            path.chmod(0o644)


def _installed_kib(stage: Path) -> int:
    return sum(p.lstat().st_size for p in stage.rglob("*") if not p.is_dir()) // 1024 + 1


def control_files(stage: Path, version: str, arch: str, python_xy: str, conffiles: list[str]) -> None:
    """DEBIAN/: control, conffiles, md5sums and the maintainer scripts of release/debian/."""
    debian = stage / "DEBIAN"
    debian.mkdir()
    sums = []
    for path in sorted(p for p in stage.rglob("*") if p.is_file() and not p.is_symlink()):
        rel = path.relative_to(stage)
        if rel.parts[0] != "DEBIAN" and f"/{rel}" not in conffiles:
            sums.append(f"{hashlib.md5(path.read_bytes()).hexdigest()}  {rel}\n")  # noqa: S324 (dpkg's format)
    control = (
        f"Package: {NAME}\n"
        f"Version: {debian_version(version)}\n"
        f"Architecture: {arch}\n"
        "Maintainer: campus-edge developers <campus-edge@users.noreply.invalid>\n"
        f"Installed-Size: {_installed_kib(stage)}\n"
        f"Depends: python{python_xy}, init-system-helpers (>= 1.54), passwd, util-linux\n"
        "Recommends: systemd\n"
        "Section: net\n"
        "Priority: optional\n"
        "Description: edge gateway for school safety (Modbus, GPIO -> MQTT)\n"
        " campus-edge reads fire alarm panels, smoke detectors and door contacts over Modbus RTU/TCP and GPIO,\n"
        " keeps every reading and event in a durable outbox and publishes them over MQTT to the school-safety\n"
        " platform. It controls rising bollards with safety interlocks, takes only signed commands, and serves\n"
        " the guards' HTTPS panel. The service runs from a virtualenv in /opt/campus-edge.\n"
    )
    _write(debian / "control", control)
    _write(debian / "conffiles", "".join(f"{c}\n" for c in conffiles))
    _write(debian / "md5sums", "".join(sums))
    for script in ("postinst", "prerm", "postrm"):
        shutil.copyfile(RELEASE / "debian" / script, debian / script)
        (debian / script).chmod(0o755)


def build_deb(dist: Path, wheel: Path, version: str, work: Path) -> Path:
    """dist/campus-edge_VERSION_ARCH.deb, packed with dpkg-deb."""
    arch = run(["dpkg", "--print-architecture"], capture_output=True).stdout.strip()
    stage = work / "root"
    stage.mkdir()
    python_xy = build_venv(stage, wheel)
    svc = service_files(stage)
    lay_out(stage, svc)
    _normalise_modes(stage)
    conffiles = [f"{PurePosixPath(svc.config).parent}/gateway.toml.example"]
    control_files(stage, version, arch, python_xy, conffiles)
    deb = dist / f"{NAME}_{debian_version(version)}_{arch}.deb"
    run(["dpkg-deb", "--root-owner-group", "-Zxz", "--build", stage, deb], stdout=subprocess.DEVNULL)
    return deb


def target_tags(arch: str) -> set[Tag]:
    """The wheel tags CPython 3.11 on Debian 12 accepts on `arch`."""
    platforms = [f"manylinux_2_{m}_{arch}" for m in range(GLIBC_MINOR[1], GLIBC_MINOR[0] - 1, -1)]
    platforms.append(f"manylinux2014_{arch}")
    py = f"cp{TARGET_PYTHON[0]}{TARGET_PYTHON[1]}"
    return set(cpython_tags(TARGET_PYTHON, [py], platforms)) | set(compatible_tags(TARGET_PYTHON, py, platforms))


def _platform_args(arch: str) -> list[str]:
    args = [f"--platform=manylinux2014_{arch}"]
    args += [f"--platform=manylinux_2_{m}_{arch}" for m in range(GLIBC_MINOR[0], GLIBC_MINOR[1] + 1)]
    py = f"{TARGET_PYTHON[0]}{TARGET_PYTHON[1]}"
    return [*args, f"--python-version={py}", "--implementation=cp", f"--abi=cp{py}", "--only-binary=:all:"]


def _requirements(wheel: Path) -> list[Requirement]:
    with zipfile.ZipFile(wheel) as zf:
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA") and n.count("/") == 1)
        message = Parser().parsestr(zf.read(meta).decode("utf-8"))
    return [Requirement(r) for r in message.get_all("Requires-Dist") or []]


def missing_wheels(wheelhouse: Path, root: Path, arch: str) -> list[tuple[Requirement, str]]:
    """Every runtime requirement of `root` (with the one that needs it), markers evaluated on `arch`, that has no
    wheel for `arch` in `wheelhouse`."""
    tags = target_tags(arch)
    env: dict[str, str] = {
        "platform_machine": arch, "platform_release": "", "platform_version": "", "platform_system": "Linux",
        "sys_platform": "linux", "implementation_version": f"{TARGET_XY}.2",
        "os_name": "posix", "python_version": TARGET_XY, "python_full_version": f"{TARGET_XY}.2",
        "implementation_name": "cpython", "platform_python_implementation": "CPython",
    }  # fmt: skip
    wheels = [(parse_wheel_filename(w.name), w) for w in wheelhouse.glob("*.whl")]
    missing: dict[str, tuple[Requirement, str]] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    queue: list[tuple[Path, frozenset[str], str]] = [(root, frozenset(EXTRAS), NAME)]
    while queue:
        wheel, extras, parent = queue.pop()
        for req in _requirements(wheel):
            if req.marker is not None and not any(req.marker.evaluate({**env, "extra": e}) for e in {"", *extras}):
                continue
            name = canonicalize_name(req.name)
            found = [w for (n, v, _b, t), w in wheels
                     if n == name and req.specifier.contains(v, prereleases=True) and t & tags]  # fmt: skip
            if not found:
                missing[f"{req} (needed by {parent})"] = (req, parent)
            elif (name, frozenset(req.extras)) not in seen:
                seen.add((name, frozenset(req.extras)))
                queue.append((found[0], frozenset(req.extras), name))
    return [missing[k] for k in sorted(missing)]


def _plain(req: Requirement) -> str:
    """The requirement without its marker, for pip download."""
    extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
    return f"{req.name}{extras}{req.specifier}"


def wheelhouse_for(wheelhouse: Path, wheel: Path, arch: str) -> None:
    """Download the wheels `arch` needs; fetch by name what pip's host-evaluated markers skipped; fail if any lacks."""
    pip: list[str | PurePath] = [
        sys.executable, "-m", "pip", "download", "--quiet", "--dest", wheelhouse, *_platform_args(arch),
        "--constraint", CONSTRAINTS,
    ]  # fmt: skip
    run([*pip, f"{wheel}[{','.join(EXTRAS)}]"])
    for _round in range(5):
        missing = missing_wheels(wheelhouse, wheel, arch)
        if not missing:
            return
        try:
            # pip evaluates markers for this machine, not for --platform: what only aarch64 needs is skipped.
            run([*pip, *(_plain(req) for req, _parent in missing)])
        except PackageError:
            break
    lacking = "; ".join(f"{req} (needed by {parent})" for req, parent in missing_wheels(wheelhouse, wheel, arch))
    raise PackageError(
        f"offline bundle: no wheel for {arch} (manylinux up to glibc 2.{GLIBC_MINOR[1]}, CPython "
        f"{TARGET_XY}) of: {lacking}"
    )


def build_offline(dist: Path, wheel: Path, deb: Path, version: str, work: Path) -> Path:
    """dist/campus-edge-offline-VERSION.tar.gz: the .deb, the wheelhouse for both platforms, a README."""
    top = work / f"{NAME}-offline-{version}"
    wheelhouse = top / "wheels"
    wheelhouse.mkdir(parents=True)
    for arch in PLATFORMS:
        wheelhouse_for(wheelhouse, wheel, arch)
    shutil.copy2(deb, top / deb.name)
    shutil.copy2(CONSTRAINTS, top / "constraints.txt")
    readme = (RELEASE / "offline-README.md").read_text(encoding="utf-8")
    _write(top / "README.md", readme.replace("VERSION", version).replace("DEB", deb.name))
    sums = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(top)}\n"
            for p in sorted(top.rglob("*")) if p.is_file()]  # fmt: skip
    _write(top / "SHA256SUMS", "".join(sums))
    bundle = dist / f"{top.name}.tar.gz"
    with tarfile.open(bundle, "w:gz") as tar:
        tar.add(top, arcname=top.name)
    return bundle


def _size(path: Path) -> str:
    return f"{path.stat().st_size / 2**20:.1f} MiB"


def main(argv: list[str] | None = None) -> int:
    """Build what is asked into --dist; print each file with its size."""
    p = argparse.ArgumentParser(prog="scripts/package", description=__doc__.split("\n")[0] if __doc__ else None)
    p.add_argument("--dist", type=Path, default=ROOT / "dist", help="where the files go (default: dist/)")
    p.add_argument("--no-offline", action="store_true", help="build no offline bundle (no wheelhouse)")
    args = p.parse_args(argv)
    dist: Path = args.dist.absolute()
    dist.mkdir(parents=True, exist_ok=True)
    version = project_version()
    try:
        wheel, sdist = build_dists(dist, version)
        with tempfile.TemporaryDirectory(prefix="campus-edge-package-") as tmp:
            deb = build_deb(dist, wheel, version, Path(tmp))
            built = [wheel, sdist, deb]
            if not args.no_offline:
                built.append(build_offline(dist, wheel, deb, version, Path(tmp)))
    except PackageError as exc:
        print(f"scripts/package: {exc}", file=sys.stderr)
        return 1
    for path in built:
        print(f"{path}  {_size(path)}")
    installed = run(["dpkg-deb", "--field", deb, "Installed-Size"], capture_output=True).stdout.strip()
    print(f"{deb.name}: {_size(deb)}, {int(installed) / 1024:.1f} MiB installed")
    return 0


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main())
