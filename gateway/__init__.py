"""The campus-edge gateway service: sensing, state tracking, the durable outbox and the MQTT uplink.

The release version has one place, pyproject.toml: an installed gateway reads it from its package metadata, a source
checkout that was never installed from the pyproject.toml beside this package.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("campus-edge")
except PackageNotFoundError:  # running from a source tree without an install
    import tomllib
    from pathlib import Path

    try:
        __version__ = str(
            tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text(encoding="utf-8"))[
                "project"
            ]["version"]
        )
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        __version__ = "0.0.0"
