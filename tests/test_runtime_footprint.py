"""The runtime apart from the development tools: a gateway installs pyproject.toml's dependencies alone (no extra),
and that stays small: at most 20 packages and 40 MB of site-packages, the figures printed in the suite's output.

A fresh virtualenv (`python -m venv`) gets the project built from a copy of the checkout (so the wheel's own build
compiles the message catalogue) with constraints/runtime.txt. What the install adds to the new venv is counted: the
venv's own pip and setuptools are the venv's. Needs an index for pip (its cache is used); skips when there is none.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
RUNTIME_PINS = ROOT / "constraints" / "runtime.txt"
MAX_PACKAGES = 20
MAX_MB = 40.0
# What a wheel is built from (pyproject.toml's packages and setup.py's catalogue step); nothing generated.
SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "gateway", "drivers", "simulators")
GENERATED = shutil.ignore_patterns("__pycache__", "*.mo", "*.egg-info")


@dataclass(frozen=True)
class Runtime:
    """A fresh venv with the runtime installed, and what the install added to it."""

    python: Path
    packages: tuple[str, ...]
    added_bytes: int


def _site(python: Path) -> Path:
    out = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(out.stdout.strip())


def _contents(site: Path) -> tuple[set[str], int]:
    """The distributions in `site` and the bytes of its files."""
    dists = {p.name.removesuffix(".dist-info") for p in site.glob("*.dist-info")}
    size = sum(p.stat().st_size for p in site.rglob("*") if p.is_file() and not p.is_symlink())
    return dists, size


def _pip(python: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    return subprocess.run(
        [python, "-m", "pip", *args], capture_output=True, text=True, env=env, check=False, timeout=900
    )


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Runtime:
    """The runtime, installed once for this module's tests."""
    base = tmp_path_factory.mktemp("runtime")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True, timeout=300)
    python = venv / "bin" / "python"
    probe = _pip(python, "download", "--no-deps", "--timeout", "10", "--retries", "1", "-d", str(base / "probe"),
                 "-c", str(RUNTIME_PINS), "paho-mqtt")  # fmt: skip
    if probe.returncode != 0:
        reason = (probe.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"pip cannot reach an index: {reason}")
    source = base / "source"
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=GENERATED)
        else:
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    (source / "scripts").mkdir()
    shutil.copy2(ROOT / "scripts" / "msgfmt.py", source / "scripts" / "msgfmt.py")
    site = _site(python)
    before, before_bytes = _contents(site)
    done = _pip(python, "install", "-q", "-c", str(RUNTIME_PINS), str(source))
    assert done.returncode == 0, f"the runtime install failed:\n{done.stdout}\n{done.stderr}"
    after, after_bytes = _contents(site)
    return Runtime(python, tuple(sorted(after - before)), after_bytes - before_bytes)


def test_runtime_footprint_is_small(runtime: Runtime, capsys: pytest.CaptureFixture[str]) -> None:
    """The runtime alone: at most 20 packages (campus-edge counted) and 40 MB, both figures printed."""
    mb = runtime.added_bytes / 1e6
    with capsys.disabled():
        print(f"\nruntime footprint: {len(runtime.packages)} packages, {mb:.1f} MB: {' '.join(runtime.packages)}")
    assert any(p.startswith("campus_edge-") for p in runtime.packages)
    assert len(runtime.packages) <= MAX_PACKAGES, runtime.packages
    assert mb <= MAX_MB


def test_runtime_reads_the_catalogue_without_babel(runtime: Runtime, tmp_path: Path) -> None:
    """The wheel carries the compiled zh-CN catalogue, read with the standard library's gettext."""
    probe = (
        "import importlib.util, gateway.base.i18n as i\n"
        "print(importlib.util.find_spec('babel'))\n"
        "print(i.tr('1 or 2', 'zh-CN'))"
    )
    out = subprocess.run([runtime.python, "-c", probe], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert out.stdout.splitlines() == ["None", "1 或 2"]


def test_runtime_watch_says_which_extra_it_needs(runtime: Runtime, tmp_path: Path) -> None:
    """Without the watch extra, `campus-edge watch` says how to install it, in English and zh-CN."""
    cli = runtime.python.parent / "campus-edge"
    out = subprocess.run(
        [cli, "watch", "--broker", "mqtt://127.0.0.1:1", "--site", "demo"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        timeout=60,
    )
    assert out.returncode == 2
    assert out.stderr == (
        "campus-edge: campus-edge watch (it checks every message against the contract's JSON Schemas) needs "
        "jsonschema, which is not installed here: pip install 'campus-edge[watch]'\n"
        "campus-edge watch (按契约的 JSON Schema 校验每条消息) 需要 jsonschema, 本机尚未安装: "
        "pip install 'campus-edge[watch]'\n"
    )
