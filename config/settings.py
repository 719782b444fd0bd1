"""Verity's one settings module; every value comes from the environment (CONTRACT.md)."""

from __future__ import annotations

import os
from datetime import timedelta
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
    "knox",
    "axes",
    "csp",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
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
    "csp.middleware.CSPMiddleware",
    "rv.middleware.InputHygieneMiddleware",
    # Last, as django-axes asks: it turns a refused (locked-out) login into its answer.
    "axes.middleware.AxesMiddleware",
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
                "rv.context.tasks",
            ],
            # |person_name and |age in every template (rv.names; issue 15)
            "builtins": ["rv.templatetags.rv_people"],
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
# django-axes first: it refuses a locked-out login before any password is checked.
AUTHENTICATION_BACKENDS = [
    "rv.throttle.ThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
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
        # knox first: an anonymous API call is answered 401 with WWW-Authenticate: Token.
        "knox.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rv.api.access.ActionRequired"],  # rv.roles: the door
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "rv.api.pagination.BoundedLimitOffsetPagination",
    # A JSON body must be an object (rv.api.parsers): no 500 on `false` or `[]`.
    "DEFAULT_PARSER_CLASSES": [
        "rv.api.parsers.ObjectJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "rv.api_errors.json_exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Verity API",
    "DESCRIPTION": "Radiotherapy record-and-verify: archive, plans, treatment history.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and Swagger UI are for signed-in users; Swagger UI comes from the installed
    # drf-spectacular-sidecar package, never from a CDN (issue 12).
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "PlanStatusEnum": "rv.models.plan.Plan.Status",
        "CourseStatusEnum": "rv.models.patient.Course.Status",
        "PatientAlertKindEnum": "rv.models.banner.PatientAlert.Kind",
        "KindEnum": "rv.models.plan.Plan.Kind",  # its name before alerts had a kind too
    },
}

# --- Web hardening (issue 12, docs/security-web.md) ----------------------------------------
# Behind a TLS-terminating reverse proxy: Secure cookies, HSTS, an HTTPS redirect, and the
# proxy's X-Forwarded-Proto / X-Forwarded-For believed only when DJANGO_TRUST_PROXY says so.
_secure_cookies = env_bool("DJANGO_SECURE_COOKIES", False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = _secure_cookies
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = env_int("DJANGO_SESSION_AGE_SECONDS", 12 * 3600, low=60)
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 0, low=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", False)
SECURE_SSL_REDIRECT = env_bool("DJANGO_SSL_REDIRECT", False)
RV_TRUST_PROXY = env_bool("DJANGO_TRUST_PROXY", False)
if RV_TRUST_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])
X_FRAME_OPTIONS = "DENY"
# Content Security Policy (django-csp 4 format): this origin only, no inline script/style.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    },
}

# Login throttling (django-axes): RV_LOGIN_FAILURE_LIMIT wrong passwords for one user name
# from one address lock that pair out for RV_LOGIN_COOLOFF_MINUTES; the web form and the
# token endpoint alike. Failures and lock-outs are in Verity's audit trail (rv.apps).
AXES_FAILURE_LIMIT = env_int("RV_LOGIN_FAILURE_LIMIT", 5, low=1)
AXES_COOLOFF_TIME = env_float("RV_LOGIN_COOLOFF_MINUTES", 15.0, low=0.1) / 60.0  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "rv.throttle.lockout_response"
AXES_CLIENT_IP_CALLABLE = "rv.throttle.client_ip"
AXES_VERBOSE = False

# API tokens (django-rest-knox): stored as SHA-512 digests, expire after
# RV_API_TOKEN_TTL_HOURS, revoked by POST /api/v1/auth/logout/ (or logout-all/) and on any
# password change (rv.services.users). Clients send "Authorization: Token <token>".
REST_KNOX = {
    "TOKEN_TTL": timedelta(hours=env_float("RV_API_TOKEN_TTL_HOURS", 12.0, low=0.01)),
    "AUTH_HEADER_PREFIX": "Token",
    "AUTO_REFRESH": False,
    "TOKEN_LIMIT_PER_USER": None,
}

# --- Verity -------------------------------------------------------------------------------
RV_DATA_DIR = env_path("RV_DATA_DIR", Path("var"), base=BASE_DIR)
RV_AE_TITLE = env_str("RV_AE_TITLE", "RV_SCP")
RV_DICOM_HOST = env_str("RV_DICOM_HOST", "127.0.0.1")
RV_DICOM_PORT = env_int("RV_DICOM_PORT", 11112, low=1, high=65535)
# Gunicorn's settings for `manage.py serve` (threads; slow clients cut off; issue 12).
RV_GUNICORN_CONFIG = str(BASE_DIR / "config" / "gunicorn.py")
RV_HTTP_PORT = env_int("RV_HTTP_PORT", 8000, low=1, high=65535)
RV_ACCEPT_UNKNOWN_AE = env_bool("RV_ACCEPT_UNKNOWN_AE", False)
# Largest PDU we accept; 128 KiB cut per-PDU overhead for large images (issue 3 measurements).
RV_MAX_PDU = env_int("RV_MAX_PDU", 131072, low=0)
# SCP processes sharing the port: one Python process uses one core (issue 3).
RV_SCP_PROCESSES = env_int("RV_SCP_PROCESSES", min(os.cpu_count() or 1, 8), low=1, high=64)
# The SCP's PostgreSQL connections come from a pool, reused across associations (issue 16,
# dicom_net/dbpool.py); idle ones beyond the two kept open close after this many seconds.
RV_SCP_DB_POOL = env_bool("RV_SCP_DB_POOL", True)
RV_SCP_DB_POOL_IDLE = env_float("RV_SCP_DB_POOL_IDLE", 300.0, low=10.0)
# The largest patient photo taken, in bytes as uploaded (rv.photos re-encodes it; issue 15).
RV_PHOTO_MAX_BYTES = env_int("RV_PHOTO_MAX_BYTES", 5 * 1024 * 1024, low=1024)
# Verification: the least time between the starts of two fractions of a plan (issue 5).
RV_MIN_FRACTION_INTERVAL_HOURS = env_int("RV_MIN_FRACTION_INTERVAL_HOURS", 6, low=0, high=168)
# Prescriptions (issue 15): a plan's dose per fraction to the primary reference point may
# differ from the prescription's by this much (% of it) at approval, unless the plan's
# machine has its own value (a physicist's, /machines/).
RV_PRESCRIPTION_TOLERANCE_PERCENT = env_float("RV_PRESCRIPTION_TOLERANCE_PERCENT", 2.0, low=0.0,
                                              high=50.0)
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
# Storage Commitment (PS3.4 Annex J, issue 14): how long a report is awaited on the request's
# own association (either way) before a new association is used, how long a node that commits
# our exports may take to report before it is asked again, and the most references one
# request may carry. Retries and leases are the export queue's (RV_EXPORT_*).
RV_COMMIT_REPORT_WAIT = env_float("RV_COMMIT_REPORT_WAIT", 10.0, low=0.1)
RV_COMMIT_REPORT_TIMEOUT = env_float("RV_COMMIT_REPORT_TIMEOUT", 3600.0, low=1.0)
RV_COMMIT_MAX_REFERENCES = env_int("RV_COMMIT_MAX_REFERENCES", 10000, low=1)
# UPS events (issue 14, manage.py ups_event_worker): attempts before an N-EVENT-REPORT is
# dropped, first retry delay (doubling, at most RV_UPS_EVENT_MAX_DELAY), a claim's lease, idle
# poll interval and network timeout in seconds, and sender threads per worker process.
RV_UPS_EVENT_MAX_ATTEMPTS = env_int("RV_UPS_EVENT_MAX_ATTEMPTS", 5, low=1)
RV_UPS_EVENT_BASE_DELAY = env_float("RV_UPS_EVENT_BASE_DELAY", 5.0, low=0.0)
RV_UPS_EVENT_MAX_DELAY = env_float("RV_UPS_EVENT_MAX_DELAY", 300.0, low=0.0)
RV_UPS_EVENT_LEASE = env_float("RV_UPS_EVENT_LEASE", 120.0, low=0.1)
RV_UPS_EVENT_POLL = env_float("RV_UPS_EVENT_POLL", 1.0, low=0.01)
RV_UPS_EVENT_TIMEOUT = env_float("RV_UPS_EVENT_TIMEOUT", 10.0, low=0.1)
RV_UPS_EVENT_THREADS = env_int("RV_UPS_EVENT_THREADS", 4, low=1, high=64)

# --- DICOM edge (issue 12): what a peer may send us, and who a peer is ---------------------
# Seconds a peer may leave us waiting at any stage: for its association request, inside a PDU,
# between PDUs of an open association (then it is aborted).
RV_DICOM_READ_TIMEOUT = env_float("RV_DICOM_READ_TIMEOUT", 30.0, low=0.1)
# Associations (and connections not yet associated) one peer address may hold per SCP process.
RV_DICOM_MAX_ASSOC_PER_PEER = env_int("RV_DICOM_MAX_ASSOC_PER_PEER", 16, low=0)  # 0: no cap
# Largest data set a Deflated Explicit VR Little Endian object may inflate to, in bytes.
RV_DICOM_MAX_INFLATED = env_int("RV_DICOM_MAX_INFLATED", 512 * 1024 * 1024, low=1)
# The largest UPS N-SET modification list or C-FIND identifier taken (a worklist step's
# attributes are a few kB; what is bigger is refused, never stored).
RV_UPS_MAX_DATASET = env_int("RV_UPS_MAX_DATASET", 1024 * 1024, low=1024)
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
        # Every 500 with its traceback on stderr, DEBUG or not (issue 12).
        "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
        "django.security": {"handlers": ["console"], "level": "WARNING", "propagate": False},
        "axes": {"handlers": ["console"], "level": "WARNING", "propagate": False},
    },
}
