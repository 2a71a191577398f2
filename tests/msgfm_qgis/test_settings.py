"""The worker Python setting used by the subprocess backend."""

from __future__ import annotations

import sys

import pytest
from qgis.core import QgsProcessingException, QgsSettings

from msgfm_qgis.settings import WORKER_PYTHON_KEY, set_worker_python, worker_python


@pytest.fixture
def restore_setting():
    before = QgsSettings().value(WORKER_PYTHON_KEY, "")
    yield
    set_worker_python(before or "")


def test_default_is_this_environments_python(restore_setting):
    set_worker_python("")
    assert worker_python() == sys.executable


def test_a_missing_interpreter_is_named(restore_setting, tmp_path):
    set_worker_python(str(tmp_path / "no-python"))
    with pytest.raises(
        QgsProcessingException, match=r"no-python' \(setting msgfm/worker_python\) does not exist"
    ):
        worker_python()
