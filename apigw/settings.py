"""Django settings, every value from the environment (see docs/architecture.md#settings)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from apigw import multiproc
from apigw.env import env_bool, env_choice, env_float, env_int, env_list, env_str
from proxy.gateway import redis_urls
from proxy.gateway.apikeys import pepper_from_secret
from proxy.gateway.config import GatewayConfig

BASE_DIR = Path(__file__).resolve().parent.parent
# Local state of `make run` (generated admin password, demo key); git-ignored.
VAR_DIR = Path(env_str("APIGW_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY is required when DEBUG is off")
    # Development only: stable per checkout so sessions survive restarts of `make run`.
    SECRET_KEY = "insecure-dev-key-" + str(BASE_DIR)

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# The one list of apps and the one list of middleware (tests/settings.py adds nothing to either).
INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "channels",
    "apigw",
    "proxy",
    "portal",
    # Request/response metrics of the Django side; the gateway path never enters Django.
    "django_prometheus",
    "drf_spectacular_sidecar",  # Swagger UI served from /static/, no CDN
    "django_filters",
    "drf_spectacular",
    "audit",
    "adminapi",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",  # outermost: times everything
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "apigw.csp.ContentSecurityPolicyMiddleware",
    # Innermost, after authentication: changes made during a request are recorded as its user's.
    "audit.middleware.AuditMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "apigw.urls"
ASGI_APPLICATION = "apigw.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.context_processors.member",
            ],
        },
    },
]

DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
try:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
except ValueError as exc:  # dj-database-url says what is wrong, we say where it came from
    raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {exc}") from exc
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The gateway rebuilds its snapshot from a thread while Django writes: wait, don't fail.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
    DATABASES["default"]["CONN_MAX_AGE"] = 0

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
if not REDIS_URL.startswith(("redis://", "rediss://", "unix://", "redis+cluster://", "rediss+cluster://")):
    raise ImproperlyConfigured(
        "REDIS_URL must start with redis://, rediss://, unix:// or, for a Redis Cluster, "
        f"redis+cluster:// or rediss+cluster://, got {REDIS_URL!r}"
    )
try:  # every client reads the URL with redis-py's parser (the limiter's own connection too)
    REDIS_CLUSTER = redis_urls.parse(REDIS_URL).cluster
except ValueError as exc:
    raise ImproperlyConfigured(f"REDIS_URL is not a valid Redis URL: {exc}") from exc
# Every Redis key the platform writes starts with this (see proxy/gateway/vocabulary.py).
REDIS_PREFIX = env_str("REDIS_PREFIX", "apigw:")
if REDIS_CLUSTER and ("{" in REDIS_PREFIX or "}" in REDIS_PREFIX):
    raise ImproperlyConfigured(f"REDIS_PREFIX must not contain braces on a Redis Cluster, got {REDIS_PREFIX!r}")

CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        # A list: django-redis splits a string at commas (its replicas), and a cluster URL has them.
        "LOCATION": [REDIS_URL],
        "KEY_PREFIX": REDIS_PREFIX + "cache",
        "OPTIONS": {"IGNORE_EXCEPTIONS": True}
        | ({"CONNECTION_FACTORY": "apigw.rediscache.ClusterConnectionFactory"} if REDIS_CLUSTER else {}),
    }
}
DJANGO_REDIS_IGNORE_EXCEPTIONS = True

# The channel layer (WebSocket revocation groups) needs a plain Redis: channels-redis speaks no
# Cluster (its group sends and receives touch keys of many channels in one call). It carries only
# short-lived messages, so a small Redis of its own is enough; on a single Redis it is that one.
CHANNEL_REDIS_URL = env_str("CHANNEL_REDIS_URL", "" if REDIS_CLUSTER else REDIS_URL)
if not CHANNEL_REDIS_URL:
    raise ImproperlyConfigured(
        "CHANNEL_REDIS_URL is required when REDIS_URL is a Redis Cluster: the channel layer "
        "(channels-redis) needs a plain Redis (docs/operations.md, Redis Cluster)"
    )
try:
    if redis_urls.parse(CHANNEL_REDIS_URL).cluster:
        raise ValueError("channels-redis speaks no Redis Cluster; give it a plain Redis")
except ValueError as exc:
    raise ImproperlyConfigured(f"CHANNEL_REDIS_URL is not a plain Redis URL: {exc}") from exc

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            # channels-redis waits for messages in BZPOPMIN calls that block 5 s on the server
            # (RedisChannelLayer.brpop_timeout); redis-py 8 gives every connection a 5 s socket
            # timeout by default, so each wait raced it: an idle gateway logged "Timeout reading"
            # every 6 s and its revocation listener lost a second each time. The read timeout
            # outlasts the wait; a dead Redis is still noticed within it.
            "hosts": [{"address": CHANNEL_REDIS_URL, "socket_timeout": 10.0, "socket_connect_timeout": 2.0}],
            "prefix": REDIS_PREFIX + "channels:",
        },
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# -- HTTPS and sessions (docs/security.md) ---------------------------------------------------------
# Secure by default once DEBUG is off; `manage.py check --deploy` passes with the production
# environment docs/security.md lists.
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
# Behind a TLS-terminating load balancer: believe its X-Forwarded-Proto (else SSL redirect loops).
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("TRUST_X_FORWARDED_PROTO") else None
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
# Orchestrator probes and Prometheus reach each instance directly over plain HTTP: a redirect to
# HTTPS would fail them (the Dockerfile's HEALTHCHECK follows it to a port without TLS). Paths
# without their leading slash.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 365 * 86_400, minimum=0)
# Both are promises about every host of the domain, which this application cannot make alone.
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
# Partners' portal sessions last two weeks (Django's default); staff sessions (admin, and the
# admin API by session) are cut to this many seconds of inactivity at login (apigw/sessions.py).
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 14 * 86_400, minimum=60)
STAFF_SESSION_SECONDS = env_int("STAFF_SESSION_SECONDS", 8 * 3600, minimum=60)
# Every page Django serves (apigw/csp.py); empty: the strict default there.
CONTENT_SECURITY_POLICY = env_str("CONTENT_SECURITY_POLICY")

LOG_LEVEL = env_choice("LOG_LEVEL", "info", ("debug", "info", "warning", "error")).upper()
LOG_FORMAT = env_choice("LOG_FORMAT", "console" if DEBUG else "json", ("json", "console"))
# One line per proxied request at INFO (docs/logging.md); off keeps the other INFO lines.
LOG_ACCESS = env_bool("LOG_ACCESS", True)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "apigw.ecsjson.RedactSecrets"}},
    "formatters": {
        "json": {"()": "apigw.ecsjson.EcsFormatter"},
        "console": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        # Batched: a thread writes the lines every 100 ms (at once for warnings and errors),
        # never the event loop (proxy/gateway/logwriter.py).
        "stdout": {
            "class": "proxy.gateway.logwriter.BatchedStreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": LOG_FORMAT,
            "filters": ["redact"],
        }
    },
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "apigw.access": {"level": LOG_LEVEL if LOG_ACCESS else "WARNING"},
        # uvicorn configures its own stderr handlers before loading the app; this replaces
        # them so its lines are JSON on stdout like everything else. Not uvicorn.access: its
        # --no-access-log must stay in force (apigw.access is the access log).
        "uvicorn": {"handlers": ["stdout"], "level": LOG_LEVEL, "propagate": False},
        "uvicorn.error": {"level": LOG_LEVEL},
        # Configuring "uvicorn" resets its existing children, which would re-enable uvicorn's
        # own access line despite --no-access-log (measured: 96 µs a request on the full path).
        "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
    },
}

# The data plane's own settings; proxy/gateway/config.py turns them into a frozen dataclass.
# Its field defaults are the only defaults: tests and benchmarks that build a GatewayConfig
# directly get the same values as a deployment that sets nothing.
_GW = GatewayConfig()
GATEWAY: dict[str, Any] = {
    # Paths Django answers; everything else is proxied traffic.
    "CONTROL_PREFIXES": env_list("GATEWAY_CONTROL_PREFIXES", list(_GW.control_prefixes)),
    "MAX_BODY_BYTES": env_int("GATEWAY_MAX_BODY_BYTES", _GW.max_body_bytes, minimum=0),
    "CONNECT_TIMEOUT": env_float("GATEWAY_CONNECT_TIMEOUT", _GW.connect_timeout, minimum=0.001),
    "READ_TIMEOUT": env_float("GATEWAY_READ_TIMEOUT", _GW.read_timeout, minimum=0.001),
    "CONFIG_POLL_SECONDS": env_float("GATEWAY_CONFIG_POLL_SECONDS", _GW.config_poll_seconds, minimum=0.05),
    "CONFIG_REFRESH_SECONDS": env_float("GATEWAY_CONFIG_REFRESH_SECONDS", _GW.config_refresh_seconds, minimum=1.0),
    "UPSTREAM_POOL_SIZE": env_int("GATEWAY_UPSTREAM_POOL_SIZE", _GW.upstream_pool_size, minimum=1),
    "VIA": env_str("GATEWAY_VIA", _GW.via),
    # Redis unreachable: "local" admits by an in-process limiter (and logs it), "deny" answers 503.
    "LIMITER_POLICY": env_choice("RATELIMIT_FAILURE_POLICY", _GW.limiter_policy, ("local", "deny")),
    "USAGE_FLUSH_SECONDS": env_float("USAGE_FLUSH_SECONDS", _GW.usage_flush_seconds, minimum=0.1),
    # WebSockets: closed (1001) after this long without a message either way, or this long open.
    "WS_IDLE_TIMEOUT": env_float("GATEWAY_WS_IDLE_TIMEOUT", _GW.ws_idle_timeout, minimum=0.1),
    "WS_MAX_LIFETIME": env_float("GATEWAY_WS_MAX_LIFETIME", _GW.ws_max_lifetime, minimum=0.1),
    "WS_PING_INTERVAL": env_float("GATEWAY_WS_PING_INTERVAL", _GW.ws_ping_interval, minimum=1.0),
    # Load balancers / proxies in front of the gateway whose X-Forwarded-For is believed (CIDRs).
    # Empty: the TCP peer is the client, whatever X-Forwarded-For says (it cannot be spoofed).
    # The control plane (portal, admin login throttles) uses the same rule: apigw/clientip.py.
    "TRUSTED_PROXIES": env_list("GATEWAY_TRUSTED_PROXIES", list(_GW.trusted_proxies)),
    # Idempotent requests with a body up to this size are buffered so they can be retried.
    "RETRY_BUFFER_BYTES": env_int("GATEWAY_RETRY_BUFFER_BYTES", _GW.retry_buffer_bytes, minimum=0),
    # Shared circuit-breaker states are re-read from Redis this often (pub/sub is the fast path).
    "HEALTH_POLL_SECONDS": env_float("GATEWAY_HEALTH_POLL_SECONDS", _GW.health_poll_seconds, minimum=0.05),
    # A request body that stalls this long between chunks, or takes longer than the upload
    # deadline in all, is cut (408): a slow client must not hold a pooled upstream connection.
    "BODY_IDLE_TIMEOUT": env_float("GATEWAY_BODY_IDLE_TIMEOUT", _GW.body_idle_timeout, minimum=0.01),
    "UPLOAD_TIMEOUT": env_float("GATEWAY_UPLOAD_TIMEOUT", _GW.upload_timeout, minimum=0.01),
    # A request waits at most this long for one of an upstream's slots (pool size x targets),
    # then gets a fast 503 instead of piling up.
    "UPSTREAM_QUEUE_TIMEOUT": env_float("GATEWAY_UPSTREAM_QUEUE_TIMEOUT", _GW.upstream_queue_timeout, minimum=0.001),
}
for _network in GATEWAY["TRUSTED_PROXIES"]:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError:
        raise ImproperlyConfigured(f"GATEWAY_TRUSTED_PROXIES: {_network!r} is not a CIDR network") from None

# Graceful shutdown (proxy/gateway/drain.py): after SIGTERM, requests in flight get this long to
# finish before the server cancels them. Below Kubernetes' default 30 s grace period, leaving
# time for the final usage flush. The image's CMD and `runplatform` pass it to uvicorn
# (--timeout-graceful-shutdown).
GATEWAY_DRAIN_SECONDS = env_int("GATEWAY_DRAIN_SECONDS", 20, minimum=1)

# API keys are stored as HMAC-SHA256(pepper, key). A separate secret lets SECRET_KEY rotate
# without invalidating every partner's key.
API_KEY_PEPPER = pepper_from_secret(env_str("API_KEY_PEPPER") or SECRET_KEY)

# -- Observability (docs/metrics.md, docs/logging.md) ------------------------------------------
# Worker processes share one metrics directory, so /metrics reports the totals of all workers.
# Set before anything imports prometheus_client (django_prometheus, the gateway's metrics).
PROMETHEUS_MULTIPROC_DIR = multiproc.configure()
# Who may read /metrics: CIDRs (or "*" for everyone), or whoever sends this bearer token.
# Loopback only by default: behind a load balancer a private address says nothing about the client.
METRICS_ALLOWED_NETWORKS = env_list("METRICS_ALLOWED_NETWORKS", ["127.0.0.0/8", "::1/128"])
METRICS_BEARER_TOKEN = env_str("METRICS_BEARER_TOKEN")  # or METRICS_BEARER_TOKEN_FILE
for _network in METRICS_ALLOWED_NETWORKS:
    if _network != "*":
        try:
            ipaddress.ip_network(_network, strict=False)
        except ValueError:
            raise ImproperlyConfigured(f"METRICS_ALLOWED_NETWORKS: {_network!r} is not a CIDR network") from None
# Per-partner metric labels: "" (none), "*" (every partner, at most METRICS_PARTNER_LABELS_MAX
# per process, the rest counted as "_other") or a comma-separated list of partner slugs.
METRICS_PARTNER_LABELS = env_str("METRICS_PARTNER_LABELS", "")
METRICS_PARTNER_LABELS_MAX = env_int("METRICS_PARTNER_LABELS_MAX", 100, minimum=1)
# With the database down, /readyz stays ready while the snapshot is the current version or
# younger than this (seconds); 0: as long as there is a snapshot.
READYZ_SNAPSHOT_MAX_AGE = env_float("READYZ_SNAPSHOT_MAX_AGE", 3600.0, minimum=0)

# -- Developer portal (portal/, docs/portal.md) ---------------------------------------------------
STATICFILES_DIRS = [BASE_DIR / "static"]
LOGIN_URL = "portal:login"
LOGIN_REDIRECT_URL = "portal:home"
LOGOUT_REDIRECT_URL = "portal:home"

# Email: printed to the console unless EMAIL_HOST names an SMTP server (or EMAIL_BACKEND says otherwise).
EMAIL_HOST = env_str("EMAIL_HOST")
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend" if EMAIL_HOST else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_PORT = env_int("EMAIL_PORT", 587, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")  # or EMAIL_HOST_PASSWORD_FILE
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", not EMAIL_USE_SSL)  # STARTTLS unless implicit TLS is asked for
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfigured("EMAIL_USE_TLS and EMAIL_USE_SSL are exclusive: set one of them")
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10, minimum=1)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "API developer portal <portal@localhost>")
SERVER_EMAIL = env_str("SERVER_EMAIL", DEFAULT_FROM_EMAIL)

# Who hears of new sign-ups and subscription requests (default: every active staff user with an email).
PORTAL_STAFF_EMAILS = env_list("PORTAL_STAFF_EMAILS", [])
# Demos: a verified sign-up is active at once, without staff approval.
PORTAL_AUTO_APPROVE = env_bool("PORTAL_AUTO_APPROVE", False)
PORTAL_VERIFY_MAX_AGE = env_int("PORTAL_VERIFY_MAX_AGE", 3 * 86_400, minimum=60)
PORTAL_INVITATION_MAX_AGE = env_int("PORTAL_INVITATION_MAX_AGE", 7 * 86_400, minimum=60)
# Throttles (apigw/throttle.py, docs/security.md), counted in Redis across all instances, per
# client IP as apigw/clientip.py resolves it. Failed sign-ins (portal and admin) per (account,
# client IP) and per client IP across accounts, within the lockout window from the first failure:
LOGIN_ATTEMPTS = env_int("LOGIN_ATTEMPTS", 5, minimum=1)
LOGIN_ATTEMPTS_PER_IP = env_int("LOGIN_ATTEMPTS_PER_IP", 30, minimum=1)
LOGIN_LOCKOUT_SECONDS = env_int("LOGIN_LOCKOUT_SECONDS", 900, minimum=1)
# Sign-ups, verification re-sends and password resets, each: per client IP (then 429) and mails
# per address (then quietly none) within the window.
PORTAL_MAIL_ACTIONS_PER_IP = env_int("PORTAL_MAIL_ACTIONS_PER_IP", 10, minimum=1)
PORTAL_MAIL_ACTIONS_PER_ADDRESS = env_int("PORTAL_MAIL_ACTIONS_PER_ADDRESS", 3, minimum=1)
PORTAL_MAIL_ACTIONS_WINDOW_SECONDS = env_int("PORTAL_MAIL_ACTIONS_WINDOW_SECONDS", 3600, minimum=1)
# Largest request body on the paths Django serves, refused (413) while it arrives (apigw/bodylimit.py).
CONTROL_MAX_BODY_BYTES = env_int("CONTROL_MAX_BODY_BYTES", 20 * 1024 * 1024, minimum=1024)
# The gateway's address as partners call it, e.g. https://api.example.com (docs/portal.md). Empty:
# the address the portal itself was reached at, right wherever the one process serves both (make run).
GATEWAY_PUBLIC_URL = env_str("GATEWAY_PUBLIC_URL").strip().rstrip("/")
if GATEWAY_PUBLIC_URL and (
    not GATEWAY_PUBLIC_URL.startswith(("http://", "https://")) or "?" in GATEWAY_PUBLIC_URL or "#" in GATEWAY_PUBLIC_URL
):
    raise ImproperlyConfigured(f"GATEWAY_PUBLIC_URL must be an http(s) URL without query, got {GATEWAY_PUBLIC_URL!r}")

# -- Admin API, audit log, declarative configuration (docs/admin-api.md, docs/config.md) ---------
# Authentication, permissions and pagination are set on the admin API's own views (adminapi/base.py),
# so other DRF views keep DRF's defaults.
REST_FRAMEWORK = {"DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema"}
SPECTACULAR_SETTINGS = {
    "TITLE": "apigw admin API",
    "DESCRIPTION": "Manage routes, upstreams, products, plans, partners, subscriptions and keys; "
    "query usage; apply declarative configuration; explain how a request would be handled. "
    "See docs/admin-api.md.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/admin/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "PREPROCESSING_HOOKS": ["adminapi.schema.admin_api_only"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "adminapi.schema.document_errors",
    ],
    "ENUM_NAME_OVERRIDES": {"KeyStatusEnum": ["active", "expired", "revoked"], "ProtocolEnum": ["http", "websocket"]},
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}
