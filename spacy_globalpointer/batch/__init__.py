"""Batch annotation with a saved pipeline: texts in, plain span records out.

- :mod:`.core`: texts in, records out (``annotate_batch``, ``annotate_texts``), any engine;
- :mod:`.arrow`: records as Arrow tables and back;
- :mod:`.ray`: the Ray Data predictor (``GlobalPointerPredictor``).

None of it is imported by the component itself.
"""
