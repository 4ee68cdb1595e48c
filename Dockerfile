# syntax=docker/dockerfile:1
# Build stage: the runtime lock installed into /install (every package pinned and hash-checked;
# anything that needs building is built here), so the runtime image needs no compiler.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY requirements.lock .
RUN pip install --no-cache-dir --disable-pip-version-check --require-hashes --prefix=/install -r requirements.lock

# Runtime stage: non-root, production ASGI server, health check on /healthz.
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=apigw.settings \
    PORT=8000 \
    WORKERS=2
RUN groupadd --system --gid 10001 apigw && useradd --system --uid 10001 --gid apigw --home-dir /app --shell /usr/sbin/nologin apigw
WORKDIR /app
COPY --from=build /install /usr/local
# Code and collected static files belong to root: the runtime user can read them, not change them,
# so a compromised process cannot plant code that survives into the next request or restart.
# Nothing at runtime writes under /app (the metrics directory is in /tmp, see apigw/multiproc.py;
# the SQLite default would: containers set DATABASE_URL).
COPY . .
RUN DEBUG=true python manage.py collectstatic --noinput --verbosity 0 \
    && chmod -R a-w,a+rX /app
USER 10001:10001
EXPOSE 8000
# /healthz is answered before host validation (apigw/probes.py): 127.0.0.1 need not be in ALLOWED_HOSTS.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('PORT', '8000')}/healthz\", timeout=2)"]
# uvicorn with uvloop + httptools (see docs/benchmarks.md for the server choice), through the
# gateway's edge protocol (framing limits before buffering, docs/security.md). The
# configuration is checked once first (one line naming the variable, exit 2), so a bad value
# does not leave the workers failing one by one. SIGTERM drains for GATEWAY_DRAIN_SECONDS
# (docs/operations.md): give the container more than that to stop (`docker run --stop-timeout 30`,
# Compose `stop_grace_period: 30s`; Kubernetes' default 30 s is enough).
STOPSIGNAL SIGTERM
CMD ["sh", "-c", "python -m apigw.startup && exec uvicorn apigw.asgi:application --host 0.0.0.0 --port ${PORT} --workers ${WORKERS} --loop uvloop --http proxy.gateway.edge:EdgeProtocol --lifespan on --no-access-log --no-server-header --no-date-header --no-proxy-headers --timeout-graceful-shutdown ${GATEWAY_DRAIN_SECONDS:-20}"]
