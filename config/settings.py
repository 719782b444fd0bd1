"""Verity's one settings module; every value comes from the environment (CONTRACT.md)."""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_float, env_int, env_list, env_path, env_str, secret_key_file

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = env_str("DJANGO_SECRET_KEY", "") or secret_key_file(BASE_DIR / "var" / "secret_key")
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "archive",
    "rv",
    "dicom_net",
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

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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
                "rv.context.permissions",
            ],
        },
    },
]

# --- Database: SQLite under var/ unless DATABASE_URL says otherwise -----------------------
DATABASE_URL = env_str("DATABASE_URL", "sqlite:///var/verity.sqlite3")
try:
    # Web requests keep their connection (a new PostgreSQL backend costs connection set-up
    # and cold catalog caches: most of a history page's time, docs/bench-history.md).
    _db = dj_database_url.parse(DATABASE_URL, conn_health_checks=True,
                                conn_max_age=env_int("RV_DB_CONN_MAX_AGE", 60, low=0))
except Exception as exc:  # dj_database_url raises bare ValueError/KeyError on nonsense
    raise ImproperlyConfigured(f"DATABASE_URL={DATABASE_URL!r} cannot be parsed: {exc}") from exc
if _db["ENGINE"] == "django.db.backends.sqlite3":
    _name = Path(str(_db["NAME"]))
    if not _name.is_absolute():
        _name = BASE_DIR / _name
    _name.parent.mkdir(parents=True, exist_ok=True)
    _db["NAME"] = str(_name)
    # The SCP stores from several threads; wait for the write lock instead of failing.
    _db["OPTIONS"] = {"timeout": 30, "transaction_mode": "IMMEDIATE",
                      "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"}
    _db["TEST"] = {"NAME": str(_name.with_name("test_" + _name.name))}
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-gb"
TIME_ZONE = env_str("TZ", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
WHITENOISE_USE_FINDERS = True  # serve app static files without a collectstatic step
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "rv.api_errors.json_exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Verity API",
    "DESCRIPTION": "Radiotherapy record-and-verify: archive, plans, treatment history.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "ENUM_NAME_OVERRIDES": {
        "PlanStatusEnum": "rv.models.plan.Plan.Status",
        "CourseStatusEnum": "rv.models.patient.Course.Status",
    },
}

# --- Verity -------------------------------------------------------------------------------
RV_DATA_DIR = env_path("RV_DATA_DIR", Path("var"), base=BASE_DIR)
RV_AE_TITLE = env_str("RV_AE_TITLE", "RV_SCP")
RV_DICOM_HOST = env_str("RV_DICOM_HOST", "127.0.0.1")
RV_DICOM_PORT = env_int("RV_DICOM_PORT", 11112, low=1, high=65535)
RV_HTTP_PORT = env_int("RV_HTTP_PORT", 8000, low=1, high=65535)
RV_ACCEPT_UNKNOWN_AE = env_bool("RV_ACCEPT_UNKNOWN_AE", False)
# Largest PDU we accept; 128 KiB cut per-PDU overhead for large images (issue 3 measurements).
RV_MAX_PDU = env_int("RV_MAX_PDU", 131072, low=0)
# SCP processes sharing the port: one Python process uses one core (issue 3).
RV_SCP_PROCESSES = env_int("RV_SCP_PROCESSES", min(os.cpu_count() or 1, 8), low=1, high=64)
# Verification: the least time between the starts of two fractions of a plan (issue 5).
RV_MIN_FRACTION_INTERVAL_HOURS = env_int("RV_MIN_FRACTION_INTERVAL_HOURS", 6, low=0, high=168)
# Export queue (manage.py export_worker): attempts before FAILED, first retry delay (doubles
# each attempt, at most RV_EXPORT_MAX_DELAY), how long a claimed job is a worker's before
# another may take it over, idle poll interval and network timeout, in seconds.
RV_EXPORT_ENQUEUE = "dicom_net.exports.export_enqueue"  # rv.outbox calls it (no import)
RV_EXPORT_MAX_ATTEMPTS = env_int("RV_EXPORT_MAX_ATTEMPTS", 8, low=1)
RV_EXPORT_BASE_DELAY = env_float("RV_EXPORT_BASE_DELAY", 30.0, low=0.0)
RV_EXPORT_MAX_DELAY = env_float("RV_EXPORT_MAX_DELAY", 3600.0, low=0.0)
RV_EXPORT_LEASE = env_float("RV_EXPORT_LEASE", 300.0, low=0.1)
RV_EXPORT_POLL = env_float("RV_EXPORT_POLL", 2.0, low=0.01)
RV_EXPORT_TIMEOUT = env_float("RV_EXPORT_TIMEOUT", 30.0, low=0.1)

# --- DICOM edge (issue 12): what a peer may send us, and who a peer is ---------------------
# Seconds a peer may leave us waiting at any stage: for its association request, inside a PDU,
# between PDUs of an open association (then it is aborted).
RV_DICOM_READ_TIMEOUT = env_float("RV_DICOM_READ_TIMEOUT", 30.0, low=0.1)
# Associations (and connections not yet associated) one peer address may hold per SCP process.
RV_DICOM_MAX_ASSOC_PER_PEER = env_int("RV_DICOM_MAX_ASSOC_PER_PEER", 16, low=0)  # 0: no cap
# Largest data set a Deflated Explicit VR Little Endian object may inflate to, in bytes.
RV_DICOM_MAX_INFLATED = env_int("RV_DICOM_MAX_INFLATED", 512 * 1024 * 1024, low=1)
# A registered node is only itself from its registered host (name, address or CIDR network).
RV_DICOM_CHECK_PEER_HOST = env_bool("RV_DICOM_CHECK_PEER_HOST", True)
# DICOM TLS (PS3.15 B.1): certificate and key (PEM) turn it on; with a CA, peers must present a
# certificate it signed. With RV_DICOM_TLS_PORT, TLS there and plain TCP on RV_DICOM_PORT;
# without, RV_DICOM_PORT speaks TLS only.
RV_DICOM_TLS_CERT = env_str("RV_DICOM_TLS_CERT", "")
RV_DICOM_TLS_KEY = env_str("RV_DICOM_TLS_KEY", "")
RV_DICOM_TLS_CA = env_str("RV_DICOM_TLS_CA", "")
RV_DICOM_TLS_PORT = env_int("RV_DICOM_TLS_PORT", 0, low=0, high=65535)  # 0: none of its own
if bool(RV_DICOM_TLS_CERT) != bool(RV_DICOM_TLS_KEY):
    raise ImproperlyConfigured("DICOM TLS needs both RV_DICOM_TLS_CERT and RV_DICOM_TLS_KEY")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "archive": {"handlers": ["console"], "level": "INFO"},
        "dicom_net": {"handlers": ["console"], "level": "INFO"},
        "rv": {"handlers": ["console"], "level": "INFO"},
        "pynetdicom": {"handlers": ["console"], "level": "WARNING"},
    },
}
