"""A short run of the command fuzz target (fuzz/command_verify.py): no input raises or is accepted unsigned."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

FUZZ = Path(__file__).resolve().parent.parent / "fuzz" / "command_verify.py"


def test_commands_fuzz_short_run(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(FUZZ), "-runs=60000", "-seed=1", f"-artifact_prefix={tmp_path}/"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Done 60000 runs" in proc.stderr
