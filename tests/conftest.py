"""Shared fixtures.

Tests that need the course's data use the ``course_images``/``course_weights`` fixtures, tests
that need the ordinary face photos ``faces_data``: in CI (``CI`` set) a
missing folder is a failure, elsewhere the test is skipped, saying why.
"""
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from happyhouse import data  # noqa: E402


def _need(kind, what="course data", how="set COURSE_DATA"):
    try:
        return data.find_folder(kind)
    except data.DataNotFoundError as err:
        if os.environ.get("CI"):
            pytest.fail(f"{what} missing in CI: {err}")
        pytest.skip(f"{what} not available here ({how}): {err}")


@pytest.fixture(scope="session")
def course_images() -> Path:
    """The folder holding the course's images (fails in CI when missing)."""
    return _need("images")


@pytest.fixture(scope="session")
def course_weights() -> Path:
    """The folder holding the course's FaceNet CSV weights (fails in CI when missing)."""
    return _need("weights")


@pytest.fixture(scope="session")
def faces_data() -> Path:
    """The ordinary face photos (``people/<person>/<photo>``, ``groups/``; fails in CI when missing)."""
    return _need("faces", "the face photos", "set FACES_DATA, or put faces/ beside COURSE_DATA")
