"""The gate-house panel: an HTTPS page for the guards, served by the gateway itself (issue 10)."""
