"""Lines: from a log file to ``LogRecord``s in time order.

``record`` (the request and its client), ``formats`` (the registry of log
formats: combined, JSON, W3C; detection), ``reading`` (files, gzip, standard
input, stats), ``order`` (time order).
"""
