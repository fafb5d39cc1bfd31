"""Features: a line as columns, a client as counts (``families``: the switchable families; ``featurizer``:
tokens, context, vocabulary; ``counts``: each client's tally and when it is judged).
"""
