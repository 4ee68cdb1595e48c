"""Development tooling: a whole platform cluster on one machine (``make cluster``) and the pieces
the cluster failure tests drive: N gateway processes behind nginx, a Redis Cluster, PostgreSQL and
the demo upstream, all on loopback ports, every process stopped by its own PID.

Not part of the platform: the wheel lists its packages (pyproject.toml) and the image leaves this
directory out (.dockerignore).
"""
