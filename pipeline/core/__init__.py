"""The small core every stage shares: ``params`` (params.yaml and its sections), ``labels`` (the
unified taxonomy) and ``atomic`` (outputs written whole or not at all).
"""
