"""pytest options for the black-box HTTP tests (see README.md).

    --vitalog PATH      the binary to test (default: $VITALOG_BIN, else build/vitalog)
    --test-data DIR     @file bodies and corpus globs (default: tests/data)
    --keep-data WHEN    keep the data directories: never (default), failed, always
    --keep-going        run the remaining steps of a case after a failing step
"""

import os
from pathlib import Path

import pytest

import harness

REPO = Path(__file__).resolve().parents[2]


def pytest_addoption(parser):
    group = parser.getgroup("vitalog", "vitalog black-box HTTP tests")
    group.addoption("--vitalog", metavar="PATH", default=os.environ.get("VITALOG_BIN", str(REPO / "build" / "vitalog")),
                    help="the vitalog binary to start (default: $VITALOG_BIN, else build/vitalog)")
    group.addoption("--test-data", metavar="DIR", default=str(REPO / "tests" / "data"),
                    help="directory of @file bodies and corpus files (default: tests/data)")
    group.addoption("--keep-data", metavar="WHEN", choices=("never", "failed", "always"), default="never",
                    help="keep the servers' data directories: never (default), failed, always")
    group.addoption("--keep-going", action="store_true",
                    help="run the remaining steps of a case after a failing step")


@pytest.fixture(scope="session")
def settings(pytestconfig) -> harness.Settings:
    binary = Path(pytestconfig.getoption("vitalog"))
    if not os.access(binary, os.X_OK):
        pytest.fail(f"no vitalog binary at {binary}: build it, or pass --vitalog PATH", pytrace=False)
    return harness.Settings(
        binary=binary,
        test_data=Path(pytestconfig.getoption("test_data")),
        keep_data=pytestconfig.getoption("keep_data"),
        keep_going=pytestconfig.getoption("keep_going"),
    )
