"""The work of stage ``report`` (``report``: results table beside the papers' numbers,
``paper_results``: those numbers) and of ``fer-pipeline models`` (``zoo``); ``cv_table`` formats a
k-fold result for both ``cv`` and ``report``. Reads evaluation outputs; never imports training code.
"""
