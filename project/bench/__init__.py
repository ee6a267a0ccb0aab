"""Benchmark of global_pointer against spancat, a CRF tagger and spaCy's ner (issue 4)."""
