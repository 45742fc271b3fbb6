"""What the door's tests need from the system (a broker, an RTSP server): missing, it is a failure
in CI (``CI`` set; .ci/run installs it) and elsewhere a skip saying what to install."""
import os

import pytest


def missing(what: str, install: str) -> None:
    """Fail (in CI) or skip: ``what`` is not installed here; ``install`` says how to get it."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} missing in CI: install it ({install}); .ci/run does so")
    pytest.skip(f"{what} not installed here ({install}): nothing to test against")
