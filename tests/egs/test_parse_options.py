"""tools/parse_options.sh as the recipes use it: known options set variables, others stop."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

EGS = Path(__file__).resolve().parents[2] / "egs" / "phrasebook"


def _run(recipe: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "run.sh", *args], cwd=EGS / recipe, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("recipe", ["s2t1", "whisper1"])
def test_unknown_option_and_missing_value_stop_the_recipe(recipe):
    bad = _run(recipe, "--no_such_option", "1")
    assert bad.returncode == 1 and "unknown option --no_such_option" in bad.stderr
    missing = _run(recipe, "--stage")
    assert missing.returncode == 1 and "missing value for --stage" in missing.stderr
    stray = _run(recipe, "stage")
    assert stray.returncode == 1 and "unknown argument stage" in stray.stderr


def test_known_options_set_the_recipe_variables():
    # Stages past the last one: nothing runs, so only the parsing is exercised.
    done = _run("s2t1", "--stage", "99", "--stop_stage", "98")
    assert done.returncode == 0, done.stderr
    assert "(run.sh) done" in done.stdout
    assert "stage" not in done.stdout.replace("(run.sh) done", "")
