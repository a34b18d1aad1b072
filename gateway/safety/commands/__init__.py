"""Signed commands from the platform and guard stations: envelope, keys, verification, dispatch and replies."""
