"""``python -m spacy_globalpointer annotate|debug-data ...``: see :mod:`.batch.cli`."""

import sys

from .batch.cli import main

if __name__ == "__main__":
    sys.exit(main())
