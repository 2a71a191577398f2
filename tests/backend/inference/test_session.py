"""The session the engine opens: its threads and options are chosen, not left to defaults."""

from __future__ import annotations

from backend.inference.session import create_session


def test_session_threads_are_set_and_do_not_spin(model_factory):
    session, provider = create_session(model_factory("identity", bands=1, tile=32), "cpu", 2)
    assert provider == "CPUExecutionProvider"
    options = session.get_session_options()
    assert options.intra_op_num_threads == 2
    assert options.inter_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
