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
COPY --chown=apigw:apigw . .
RUN DEBUG=true python manage.py collectstatic --noinput --verbosity 0
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('PORT', '8000')}/healthz\", timeout=2)"]
# uvicorn with uvloop + httptools (see docs/benchmarks.md for the server choice).
CMD ["sh", "-c", "exec uvicorn apigw.asgi:application --host 0.0.0.0 --port ${PORT} --workers ${WORKERS} --loop uvloop --http httptools --lifespan on --no-access-log --no-server-header --no-date-header --no-proxy-headers"]
