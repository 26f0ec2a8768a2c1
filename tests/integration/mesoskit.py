"""The Mesos test kit (``corral.testing.mesos``) for this directory's tests; they are
skipped where pymesos is not installed (``bash scripts/pymesos-deps.sh PYTHON``)."""

import pytest

pytest.importorskip("pymesos", reason="pymesos: run scripts/pymesos-deps.sh")

from corral.testing.mesos import *  # noqa: F403
from corral.testing.mesos import pymesos  # noqa: F401
