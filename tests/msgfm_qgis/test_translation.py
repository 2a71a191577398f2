"""Every user-visible string of the dialogs goes through ``tr()`` (QGIS's translation hook)."""

from __future__ import annotations

import pytest
from qgis.core import QgsProcessingParameterEnum

from msgfm_qgis.algorithms import ALGORITHMS
from msgfm_qgis.algorithms.base import MsgfmAlgorithm
from msgfm_qgis.algorithms.embedding_tools import EMBEDDING_ALGORITHMS

MARK = "\u27e6"  # what the stand-in translator puts before every string it translates


@pytest.fixture
def marking_translator(monkeypatch):
    """A translator that marks what it translates (no .qm file is needed to see what passes)."""
    monkeypatch.setattr(MsgfmAlgorithm, "tr", lambda self, text: MARK + text)


@pytest.mark.parametrize("algorithm", [*ALGORITHMS, *EMBEDDING_ALGORITHMS], ids=lambda a: a.NAME)
def test_names_descriptions_and_choices_are_translated(marking_translator, algorithm):
    instance = algorithm()
    instance.initAlgorithm()
    assert instance.displayName().startswith(MARK)
    assert instance.group().startswith(MARK)
    definitions = instance.parameterDefinitions()
    assert definitions
    for definition in definitions:
        assert definition.description().startswith(MARK), definition.name()
        if isinstance(definition, QgsProcessingParameterEnum):
            options = definition.options()
            untranslated = [o for o in options if not o.startswith(MARK)]
            # Sensor names are identifiers (s2, sar, ...), the same in every language.
            assert all(o.islower() and " " not in o for o in untranslated), untranslated
