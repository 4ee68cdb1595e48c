"""Django settings, every value from the environment (see docs/architecture.md#settings)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from apigw.env import env_bool, env_choice, env_float, env_int, env_list, env_str
from proxy.gateway.apikeys import pepper_from_secret

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY is required when DEBUG is off")
    # Development only: stable per checkout so sessions survive restarts of `make run`.
    SECRET_KEY = "insecure-dev-key-" + str(BASE_DIR)

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

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
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
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
if not REDIS_URL.startswith(("redis://", "rediss://", "unix://")):
    raise ImproperlyConfigured(f"REDIS_URL must start with redis://, rediss:// or unix://, got {REDIS_URL!r}")
# Every Redis key the platform writes starts with this (see proxy/gateway/redis_keys.py).
REDIS_PREFIX = env_str("REDIS_PREFIX", "apigw:")

CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": REDIS_PREFIX + "cache",
        "OPTIONS": {"IGNORE_EXCEPTIONS": True},
    }
}
DJANGO_REDIS_IGNORE_EXCEPTIONS = True

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "prefix": REDIS_PREFIX + "channels:"},
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

SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("TRUST_X_FORWARDED_PROTO") else None

LOG_LEVEL = env_choice("LOG_LEVEL", "info", ("debug", "info", "warning", "error")).upper()
LOG_FORMAT = env_choice("LOG_FORMAT", "console" if DEBUG else "json", ("json", "console"))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "ecs_logging.StdlibFormatter"},
        "console": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {"stdout": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

# The data plane's own settings; proxy/gateway/config.py turns them into a frozen dataclass.
GATEWAY: dict[str, Any] = {
    # Paths Django answers; everything else is proxied traffic.
    "CONTROL_PREFIXES": env_list(
        "GATEWAY_CONTROL_PREFIXES",
        ["/admin/", "/portal/", "/api/admin/", "/healthz", "/readyz", "/metrics", "/static/"],
    ),
    "MAX_BODY_BYTES": env_int("GATEWAY_MAX_BODY_BYTES", 10 * 1024 * 1024, minimum=0),
    "CONNECT_TIMEOUT": env_float("GATEWAY_CONNECT_TIMEOUT", 5.0, minimum=0.001),
    "READ_TIMEOUT": env_float("GATEWAY_READ_TIMEOUT", 60.0, minimum=0.001),
    "CONFIG_POLL_SECONDS": env_float("GATEWAY_CONFIG_POLL_SECONDS", 2.0, minimum=0.05),
    "CONFIG_REFRESH_SECONDS": env_float("GATEWAY_CONFIG_REFRESH_SECONDS", 60.0, minimum=1.0),
    "UPSTREAM_POOL_SIZE": env_int("GATEWAY_UPSTREAM_POOL_SIZE", 256, minimum=1),
    "VIA": env_str("GATEWAY_VIA", "apigw"),
    # Redis unreachable: "local" admits by an in-process limiter (and logs it), "deny" answers 503.
    "LIMITER_POLICY": env_choice("RATELIMIT_FAILURE_POLICY", "local", ("local", "deny")),
    "USAGE_FLUSH_SECONDS": env_float("USAGE_FLUSH_SECONDS", 5.0, minimum=0.1),
}

# API keys are stored as HMAC-SHA256(pepper, key). A separate secret lets SECRET_KEY rotate
# without invalidating every partner's key.
API_KEY_PEPPER = pepper_from_secret(env_str("API_KEY_PEPPER") or SECRET_KEY)
