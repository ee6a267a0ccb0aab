"""Batch annotation with a saved pipeline: texts or files in, plain span records out.

- :mod:`.core`: texts in, records out (``annotate_batch``, ``annotate_texts``), any engine;
- :mod:`.arrow`: records as Arrow tables and back;
- :mod:`.ray`: the Ray Data predictor (``GlobalPointerPredictor``);
- :mod:`.engines`: where a run annotates, in this process or on Ray;
- :mod:`.run`: a file in, a file out (``annotate_file``), with the checks on its paths
  (:mod:`.paths`), its input (:mod:`.readers`), its outputs (:mod:`.outputs`), the rows
  through the engine (:mod:`.rows`) and the progress bar (:mod:`.progress`);
- :mod:`.cli`: ``python -m spacy_globalpointer annotate``.

None of it is imported by the component itself.
"""
