# syntax=docker/dockerfile:1
# Build stage: wheels for everything, so the runtime image needs no compiler.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY requirements.txt .
RUN pip wheel --no-cache-dir --wheel-dir /wheels -r requirements.txt

# Runtime stage: non-root, production ASGI server, health check on /healthz.
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=apigw.settings \
    PORT=8000 \
    WORKERS=2
RUN groupadd --system --gid 10001 apigw && useradd --system --uid 10001 --gid apigw --home-dir /app --shell /usr/sbin/nologin apigw
WORKDIR /app
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links=/wheels /wheels/* && rm -rf /wheels
# Code and collected static files belong to root: the runtime user can read them, not change them,
# so a compromised process cannot plant code that survives into the next request or restart.
# Nothing at runtime writes under /app (the metrics directory is in /tmp, see apigw/multiproc.py;
# the SQLite default would: containers set DATABASE_URL).
COPY . .
RUN DEBUG=true python manage.py collectstatic --noinput --verbosity 0 \
    && chmod -R a-w,a+rX /app
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('PORT', '8000')}/healthz\", timeout=2)"]
# uvicorn with uvloop + httptools (see docs/benchmarks.md for the server choice).
CMD ["sh", "-c", "exec uvicorn apigw.asgi:application --host 0.0.0.0 --port ${PORT} --workers ${WORKERS} --loop uvloop --http httptools --lifespan on --no-access-log --no-server-header --no-date-header --no-proxy-headers"]
