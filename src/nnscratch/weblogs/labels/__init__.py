"""Labels: good, gray and bad for training and evaluation (``rules``: the rule set and label files;
``data``: labelled lines and the split by client).
"""
