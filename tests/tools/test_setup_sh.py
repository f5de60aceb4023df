"""tools/setup.sh: which extras it installs, and when it installs again.

Run on a copy of the script next to a copy of setup.py, with a stand-in ``.venv/bin/python`` that
records its arguments instead of running pip, and ``espeak-ng``, ``opusenc`` and ``c2enc`` on
the PATH.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _checkout(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "tools").mkdir(parents=True)
    shutil.copy(REPO / "tools" / "setup.sh", root / "tools" / "setup.sh")
    shutil.copy(REPO / "setup.py", root / "setup.py")
    venv_bin = root / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    fake = venv_bin / "python"
    fake.write_text(f'#!/bin/sh\necho "$*" >> {root / "pip.log"}\n')
    fake.chmod(0o755)
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("espeak-ng", "opusenc", "c2enc"):  # found: no apt-get from a test
        (tools / tool).write_text("#!/bin/sh\n")
        (tools / tool).chmod(0o755)
    return root


def _run(root: Path, *args: str) -> list[str]:
    """The pip commands one run of setup.sh issued."""
    log = root / "pip.log"
    log.unlink(missing_ok=True)
    env = dict(os.environ, PATH=f"{root.parent / 'bin'}:{os.environ['PATH']}")
    done = subprocess.run(
        ["bash", str(root / "tools" / "setup.sh"), *args], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return log.read_text().splitlines() if log.exists() else []


def test_plain_setup_installs_the_corpus_extra_and_dev_installs_dev(tmp_path):
    root = _checkout(tmp_path)
    first = _run(root)
    assert "-m pip install -q -e .[corpus]" in first
    assert not any("espnet" in c for c in first)  # the parity-test reference is dev only
    assert _run(root) == []  # up to date
    dev = _run(root, "--dev")
    assert "-m pip install -q -e .[dev]" in dev and any("espnet==" in c for c in dev)
    assert _run(root) == []  # [dev] holds [corpus]: nothing to do
    # a changed setup.py reinstalls what was there, not less
    (root / "setup.py").write_text((root / "setup.py").read_text() + "\n# changed\n")
    assert "-m pip install -q -e .[dev]" in _run(root)


def test_unknown_arguments_are_refused(tmp_path):
    root = _checkout(tmp_path)
    done = subprocess.run(
        ["bash", str(root / "tools" / "setup.sh"), "--everything"], capture_output=True, text=True
    )
    assert done.returncode == 2 and "usage: bash tools/setup.sh [--dev]" in done.stderr
