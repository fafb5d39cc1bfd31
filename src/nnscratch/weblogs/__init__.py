"""Bot detection on web-server access logs (``nnscratch logs``); see docs/weblogs.md.

Modules, in the order a line travels: ``parse`` (lines to records), ``labels``
(rules and label files), ``features`` (tokens, vocabulary, behaviour), ``data``
(labelled lines, the split by client), ``model`` (training, metrics, model
files), ``classify`` (streaming classification and the ban list).
"""
