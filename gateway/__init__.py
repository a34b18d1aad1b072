"""The campus-edge gateway service: sensing, state tracking, the durable outbox and the MQTT uplink."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("campus-edge")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0"
