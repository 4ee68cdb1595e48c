"""The data plane: a raw ASGI application that proxies partner traffic.

Nothing in this package imports Django's ORM, DRF, forms or templates; it reads a compiled,
immutable snapshot of the configuration (see snapshot.py) and touches Redis at most once per
request. Phases, one module each: routing → auth → ratelimit → upstream → accesslog.
"""
