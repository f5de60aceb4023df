"""Session-wide test settings.

Triton reads ``TRITON_INTERPRET`` when it is first imported and when kernels are decorated. On a
machine without CUDA the kernel tests run through the interpreter, so the variable is set before
any test module can import triton (see tests/kernels/conftest.py). With CUDA the compiled kernels
run and nothing is set.

``speechkit.kernels`` is the repository's top-level ``kernels/`` directory, mapped onto that name
by ``setup.py`` (``package_dir``) in a wheel or an editable install. Tests run from a source
checkout as well (``PYTHONPATH=<checkout>``), where nothing maps it, or where an editable install
of another checkout would map it to that one's kernels: while ``speechkit`` is imported from this
checkout, ``speechkit.kernels`` is this checkout's ``kernels/``. Against an installed speechkit
(a wheel in site-packages) the installed package is tested, untouched.

Tests marked ``cuda`` need a CUDA GPU and are skipped without one; ``tools/gpu_check.sh`` runs
them (``pytest -m cuda``) when a GPU is lent. Tests marked ``interpreter`` run the kernels in
their own process; on CPU, in a run that also collects their child-process runner (the full
suite, or tests/kernels), they run in one child pytest process instead, and that runner reports
their result.
"""

import os
import sys
from importlib.machinery import PathFinder
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


class _CheckoutKernels:
    """Meta path finder: ``speechkit.kernels`` -> ROOT/kernels while speechkit is ROOT/speechkit."""

    @staticmethod
    def find_spec(fullname, path=None, target=None):
        parent = sys.modules.get("speechkit")
        if fullname != "speechkit.kernels" or parent is None:
            return None
        if Path(parent.__file__).resolve().parent != ROOT / "speechkit":
            return None  # an installed speechkit: its own speechkit.kernels
        return PathFinder.find_spec(fullname, [str(ROOT)])


sys.meta_path.insert(0, _CheckoutKernels)


# The test that runs the tests marked ``interpreter`` in a child process, and where the hook below
# leaves their node ids for it.
INTERPRETER_RUNNER = "test_interpreter_tests_pass_in_a_child_process"
_INTERPRETER_TESTS = pytest.StashKey[list]()


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: needs a CUDA GPU (run by tools/gpu_check.sh)")
    config.addinivalue_line(
        "markers",
        "interpreter: runs the Triton kernels in this process (on CPU through Triton's "
        "interpreter); in a run that also collects tests/kernels' child-process runner, these "
        "tests run in that child instead (see kernels/README.md, Known issue)",
    )


@pytest.fixture
def interpreter_tests(pytestconfig) -> list:
    """Node ids of the ``interpreter`` tests this session left to the child-process runner."""
    return pytestconfig.stash.get(_INTERPRETER_TESTS, [])


@pytest.hookimpl(trylast=True)  # after -k / -m deselection: only what was selected is moved
def pytest_collection_modifyitems(config, items):
    # The kernel tests run first, in a fresh process. After some 400 other tests, Triton's CPU
    # interpreter's backward op crashed the whole run in two of three clean-clone runs of the
    # README's test command (a segmentation fault, then std::bad_alloc, both in the dispatch
    # of speechkit::flash_attn_bwd), while tests/kernels alone passed in every one of 11 runs.
    # The cause (state left by an earlier test or C extension) is not found yet; see
    # kernels/README.md.
    kernels = ROOT / "tests" / "kernels"
    first = [item for item in items if kernels in Path(item.path).parents]
    items[:] = first + [item for item in items if kernels not in Path(item.path).parents]
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (tools/gpu_check.sh runs it on one)")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)
    _leave_interpreter_tests_to_a_child(config, items)


def _leave_interpreter_tests_to_a_child(config, items):
    """Moves the ``interpreter`` tests out of this process when their child-process runner
    (tests/kernels/test_flash_attention.py) is collected too, as in a full-suite run.

    In the full suite's process, Triton's interpreter has failed inside torch's dispatcher (a
    segmentation fault, ``std::bad_alloc``, ``ValueError: vector::reserve``; on 2026-12-06 at the
    very first kernel call of a CI run) while the same tests in a process with only their own
    imports have always passed; an address check of the kernels' loads and stores found none
    outside their tensors (kernels/README.md). A file or test selected on its own still runs
    here, where a failure shows its own traceback.
    """
    if not any(item.name == INTERPRETER_RUNNER for item in items):
        return
    moved = [item for item in items if item.get_closest_marker("interpreter") is not None]
    if not moved:
        return
    items[:] = [item for item in items if item.get_closest_marker("interpreter") is None]
    config.hook.pytest_deselected(items=moved)
    config.stash[_INTERPRETER_TESTS] = [item.nodeid for item in moved]
