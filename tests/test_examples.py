"""The README's example runs as written and prints what the README says it prints."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_counter_example_restarts_the_crashed_server() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "counter.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.splitlines() == ["15", "call failed: asked to crash", "10"]
    assert "crashed: RuntimeError('asked to crash'); last message: call 'crash'" in result.stderr
