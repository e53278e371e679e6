"""The work of stage ``report`` (``report``: results table beside the papers' numbers,
``paper_results``: those numbers) and of ``fer-pipeline models`` (``zoo``). Reads evaluation
outputs; never imports training code.
"""
