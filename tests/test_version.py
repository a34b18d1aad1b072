"""The release version from one place (pyproject.toml) and the contract version beside it."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import gateway
from gateway.base import contract
from gateway.base.contract import CONTRACT_VERSION, Topics
from gateway.safety.alarms import SCHEMA_ALARMS

ROOT = Path(__file__).resolve().parent.parent
RELEASE = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]


def test_version_is_pyproject_version() -> None:
    """The installed package's version is the one pyproject.toml gives."""
    assert gateway.__version__ == RELEASE


def test_version_of_an_uninstalled_checkout_is_pyproject_version() -> None:
    """Without package metadata (no site-packages, so no install), the source tree's pyproject.toml is read."""
    code = "import sys; sys.path.insert(0, sys.argv[1]); import gateway; print(gateway.__version__)"
    out = subprocess.run([sys.executable, "-S", "-c", code, str(ROOT)], capture_output=True, text=True, check=True)
    assert out.stdout == f"{RELEASE}\n"


def test_cli_version_names_release_and_contract() -> None:
    """`campus-edge --version` prints the release and the contract version it speaks."""
    out = subprocess.run([sys.executable, "-m", "gateway.cli", "--version"], capture_output=True, text=True,
                         check=True, cwd=ROOT)  # fmt: skip
    assert out.stdout == f"campus-edge {RELEASE} (contract v1)\n"


def test_contract_version_is_topic_tree_and_schema_ids() -> None:
    """CONTRACT_VERSION is the `v1` of the topic tree and the last part of every schema id."""
    assert CONTRACT_VERSION == 1
    assert Topics("s", "g").prefix == "campus/v1/s/g"
    ids = [v for k, v in vars(contract).items() if k.startswith("SCHEMA_")] + [SCHEMA_ALARMS]
    assert len(ids) == 9
    assert all(i.startswith("campus-edge/") and i.endswith(f"/{CONTRACT_VERSION}") for i in ids), ids
