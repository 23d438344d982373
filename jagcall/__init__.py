import os

# [!!] Before anything imports numpy: OpenBLAS reads this once, when it loads. Its worker threads spin on a
# core for a while after every matrix product; a web process runs one per caller's pause (Smart Turn's
# features, telephony/engine/analyzers.py) and burned ~55 ms of a core spinning after each ~5 ms of work
# (docs/voice-engine.md, CPU and capacity). JagCall's models run in ONNX Runtime, which has threads of
# its own; numpy's products here are small. An operator's own value is kept.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from jagcall.celery import app as celery_app  # noqa: E402

__all__ = ["celery_app"]
