"""Kept for old imports: the Ray Data predictor now lives in :mod:`.batch.ray`."""

from .batch.ray import GlobalPointerPredictor, probe_spans_key, require_ray, worker_cpus

__all__ = ["GlobalPointerPredictor", "probe_spans_key", "require_ray", "worker_cpus"]
