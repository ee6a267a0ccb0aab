"""Shared fixtures."""

from typing import List, Tuple

import pytest
from gp_testing import train_pipeline
from spacy.language import Language
from spacy.training import Example


@pytest.fixture(scope="session")
def trained_nlp() -> Tuple[Language, List[Example]]:
    return train_pipeline()
