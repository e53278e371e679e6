"""The work of stages ``evaluate`` and ``cv``: the one scoring function (``scoring``), metrics,
complexity (parameters, FLOPs), ONNX export and latency, and subject-independent k-fold
cross-validation (``crossval``) and its table (``cv_table``, which ``report`` shows too).
"""
