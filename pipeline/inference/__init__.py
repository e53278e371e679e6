"""The work of ``fer-pipeline predict``: detect, align and classify the faces of photographs.
"""
