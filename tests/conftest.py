"""Shared fixtures.

Tests that need the course's data use the ``course_data`` fixture: in CI (``CI`` set) a
missing folder is a failure, elsewhere the test is skipped, saying why.
"""
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import happyhouse.data as cd  # noqa: E402


def _need(kind):
    try:
        return cd.find_folder(kind)
    except cd.DataNotFoundError as err:
        if os.environ.get("CI"):
            pytest.fail(f"course data missing in CI: {err}")
        pytest.skip(f"course data not available here (set COURSE_DATA): {err}")


@pytest.fixture(scope="session")
def course_images() -> Path:
    """The folder holding the course's images (fails in CI when missing)."""
    return _need("images")


@pytest.fixture(scope="session")
def course_weights() -> Path:
    """The folder holding the course's FaceNet CSV weights (fails in CI when missing)."""
    return _need("weights")
