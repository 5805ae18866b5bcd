"""Tollway settings. The only module that reads the environment; every variable is listed in .env.example."""

from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from config.env import database_from_url, env_bool, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("TOLLWAY_DATA_DIR", str(BASE_DIR / "var")))
DATA_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("TOLLWAY_DEBUG", False)
SECRET_KEY = env_str("TOLLWAY_SECRET_KEY", "")
if not SECRET_KEY:
    # The embedded default keeps a generated key on disk so sessions and encrypted fields survive restarts.
    from config.secrets_file import load_or_create_secret

    SECRET_KEY = load_or_create_secret(DATA_DIR / "secret_key", nbytes=48)
ALLOWED_HOSTS = env_list("TOLLWAY_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.sites",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    "allauth.socialaccount.providers.google",
    "allauth.socialaccount.providers.github",
    "allauth.socialaccount.providers.microsoft",
    "allauth.mfa",
    "portal",
    "portal.prompts",
    "routing",
    "billing",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
SITE_ID = 1
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/console/"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_UNIQUE_EMAIL = True
# Email verification: "mandatory" by default; the e2e tests read the link from the file email backend.
ACCOUNT_EMAIL_VERIFICATION = env_str("TOLLWAY_EMAIL_VERIFICATION", "mandatory")
ACCOUNT_CONFIRM_EMAIL_ON_GET = True
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[Tollway] "
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
# SSO providers are configured from settings (no database rows needed); each is on when its client id is set.
SOCIALACCOUNT_PROVIDERS = {}
if env_str("TOLLWAY_OIDC_CLIENT_ID", ""):
    SOCIALACCOUNT_PROVIDERS["openid_connect"] = {
        "APPS": [
            {
                "provider_id": env_str("TOLLWAY_OIDC_PROVIDER_ID", "oidc"),
                "name": env_str("TOLLWAY_OIDC_NAME", "Single sign-on"),
                "client_id": env_str("TOLLWAY_OIDC_CLIENT_ID", ""),
                "secret": env_str("TOLLWAY_OIDC_CLIENT_SECRET", ""),
                "settings": {"server_url": env_str("TOLLWAY_OIDC_SERVER_URL", "")},
            }
        ]
    }
for _provider in ("google", "github", "microsoft"):
    _client_id = env_str(f"TOLLWAY_{_provider.upper()}_CLIENT_ID", "")
    if _client_id:
        SOCIALACCOUNT_PROVIDERS[_provider] = {
            "APPS": [{"client_id": _client_id, "secret": env_str(f"TOLLWAY_{_provider.upper()}_CLIENT_SECRET", "")}]
        }

ROOT_URLCONF = "config.urls"
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
                "portal.context_processors.console_nav",
            ]
        },
    }
]
ASGI_APPLICATION = "config.asgi.application"

DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'tollway.sqlite3'}")
DATABASES = {"default": database_from_url(DATABASE_URL, base_dir=BASE_DIR)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL", "")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Celery: a real broker in production; tasks run inline on the embedded default.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL or "memory://")
CELERY_TASK_ALWAYS_EAGER = env_bool("TOLLWAY_CELERY_EAGER", not bool(REDIS_URL or env_str("CELERY_BROKER_URL", "")))
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
# Usage aggregation (billing/aggregation.py) and retention (billing/retention.py), run by Celery beat. A call
# shows in the dashboards within EVERY + SETTLE + TOLLWAY_USAGE_FLUSH_INTERVAL_S (36 s at the defaults).
TOLLWAY_AGGREGATE_EVERY_S = env_float("TOLLWAY_AGGREGATE_EVERY_S", 30.0)
# Records younger than this are left for the next run: a gateway stamps stored_at before its insert commits,
# and hosts' clocks differ a little. Must exceed both, or a record could slip behind the aggregation cursor.
TOLLWAY_AGGREGATE_SETTLE_S = env_float("TOLLWAY_AGGREGATE_SETTLE_S", 5.0)
TOLLWAY_USAGE_RETENTION_DAYS = env_int("TOLLWAY_USAGE_RETENTION_DAYS", 90)
TOLLWAY_USAGE_PURGE_BATCH = env_int("TOLLWAY_USAGE_PURGE_BATCH", 10000)
if TOLLWAY_USAGE_RETENTION_DAYS < 2 or TOLLWAY_USAGE_PURGE_BATCH < 1 or TOLLWAY_AGGREGATE_EVERY_S <= 0:
    raise ImproperlyConfigured(
        "TOLLWAY_USAGE_RETENTION_DAYS must be at least 2, TOLLWAY_USAGE_PURGE_BATCH and TOLLWAY_AGGREGATE_EVERY_S "
        "above 0"
    )
# Stored /v1/responses answers (store: true) are kept this long for previous_response_id and GET, then purged
# (routing/proxy/responses_store.py, hourly).
TOLLWAY_RESPONSES_RETENTION_DAYS = env_float("TOLLWAY_RESPONSES_RETENTION_DAYS", 30.0)
if TOLLWAY_RESPONSES_RETENTION_DAYS <= 0:
    raise ImproperlyConfigured("TOLLWAY_RESPONSES_RETENTION_DAYS must be above 0")
# A gateway process's reservations in Redis are given back this long after it died without settling them
# (its lease lapses; the reconcile task, every minute, releases them). Live processes renew at a quarter of it.
TOLLWAY_LEDGER_LEASE_S = env_float("TOLLWAY_LEDGER_LEASE_S", 60.0)
CELERY_BEAT_SCHEDULE = {
    # `expires`: runs a busy worker could not start in time are dropped, not stacked up.
    "aggregate-usage": {
        "task": "billing.tasks.aggregate_usage",
        "schedule": TOLLWAY_AGGREGATE_EVERY_S,
        "options": {"expires": TOLLWAY_AGGREGATE_EVERY_S},
    },
    "purge-expired-usage": {"task": "billing.tasks.purge_expired_usage", "schedule": 3600.0},
    "reconcile-budgets": {"task": "billing.tasks.reconcile_budgets", "schedule": 60.0, "options": {"expires": 60}},
    "prune-change-feed": {"task": "routing.tasks.prune_change_feed", "schedule": 3600.0},
    "purge-expired-responses": {"task": "routing.tasks.purge_expired_responses", "schedule": 3600.0},
}
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
# Dashboards: without a broker there is no beat, so each gateway process offers to run CELERY_BEAT_SCHEDULE on a
# thread of its own (one process at a time runs it; config/embedded_beat.py). 0 turns that off (tests do).
TOLLWAY_EMBEDDED_BEAT = env_bool("TOLLWAY_EMBEDDED_BEAT", True)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"

SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

REST_FRAMEWORK = {
    # Token first: an anonymous call then gets 401 with WWW-Authenticate, not 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "EXCEPTION_HANDLER": "portal.api.exceptions.handle",
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Tollway API",
    "DESCRIPTION": "Automation API of the Tollway developer portal (the gateway itself is under /v1).",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
}

# Text for people on the embedded default; json (one object a line) for log pipelines in production.
TOLLWAY_LOG_FORMAT = env_str("TOLLWAY_LOG_FORMAT", "text")
if TOLLWAY_LOG_FORMAT not in {"text", "json"}:
    raise ImproperlyConfigured(f"TOLLWAY_LOG_FORMAT must be text or json, not {TOLLWAY_LOG_FORMAT!r}")
# One line per /v1 request on the "tollway.access" logger, written by a background thread.
TOLLWAY_ACCESS_LOG = env_bool("TOLLWAY_ACCESS_LOG", True)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "routing.observability.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": TOLLWAY_LOG_FORMAT},
        # Formats and writes off the event loop: the request path only queues the record.
        "access": {"()": "routing.observability.logs.BackgroundStreamHandler", "formatter": TOLLWAY_LOG_FORMAT},
    },
    "root": {"handlers": ["console"], "level": env_str("TOLLWAY_LOG_LEVEL", "INFO")},
    "loggers": {
        # httpx logs every upstream call at INFO: a line per proxied request (~4% of gateway CPU in bench/).
        "httpx": {"level": "WARNING"},
        "tollway.access": {
            "handlers": ["access"],
            "level": "INFO" if TOLLWAY_ACCESS_LOG else "WARNING",
            "propagate": False,
        },
    },
}

# --- Secrets -------------------------------------------------------------------------------------------------
# Pepper for API-key hashes (HMAC-SHA-256). Changing it invalidates every key.
TOLLWAY_KEY_PEPPER = env_str("TOLLWAY_KEY_PEPPER", "")
if not TOLLWAY_KEY_PEPPER:
    from config.secrets_file import load_or_create_secret

    TOLLWAY_KEY_PEPPER = load_or_create_secret(DATA_DIR / "key_pepper", nbytes=32)
# Fernet keys for provider credentials, newest first; older ones still decrypt (rotation: see README).
TOLLWAY_FERNET_KEYS = env_list("TOLLWAY_FERNET_KEYS", [])
if not TOLLWAY_FERNET_KEYS:
    from config.secrets_file import load_or_create_fernet_key

    TOLLWAY_FERNET_KEYS = [load_or_create_fernet_key(DATA_DIR / "fernet_key")]

# --- Gateway -------------------------------------------------------------------------------------------------
# Private and loopback upstream addresses are refused unless the platform allows them (link-local never is).
TOLLWAY_ALLOW_PRIVATE_UPSTREAMS = env_bool("TOLLWAY_ALLOW_PRIVATE_UPSTREAMS", False)
TOLLWAY_ALLOW_LOOPBACK_UPSTREAMS = env_bool("TOLLWAY_ALLOW_LOOPBACK_UPSTREAMS", False)
TOLLWAY_MAX_BODY_BYTES = env_int("TOLLWAY_MAX_BODY_BYTES", 8 * 1024 * 1024)
# --- Hostile input (/v1) ---
# Deeper request bodies get 400: every upstream encoder must be able to re-serialise what was admitted.
TOLLWAY_MAX_JSON_DEPTH = env_int("TOLLWAY_MAX_JSON_DEPTH", 64)
if not 2 <= TOLLWAY_MAX_JSON_DEPTH <= 200:
    raise ImproperlyConfigured(f"TOLLWAY_MAX_JSON_DEPTH must be from 2 to 200, not {TOLLWAY_MAX_JSON_DEPTH}")
# How often each process reads the change feed (routing/control_plane/): the bound on a change reaching every
# process without Redis. With REDIS_URL, a publish wakes every process at once and this is the safety net.
TOLLWAY_SNAPSHOT_REFRESH_S = env_float("TOLLWAY_SNAPSHOT_REFRESH_S", 2.0)
# A process more changes behind than this builds its view afresh instead of applying them one by one.
TOLLWAY_CHANGES_MAX_BATCH = env_int("TOLLWAY_CHANGES_MAX_BATCH", 10000)
# How long applied changes stay in the feed (a process stopped longer than this rebuilds on return anyway).
TOLLWAY_CHANGES_RETENTION_H = env_float("TOLLWAY_CHANGES_RETENTION_H", 24.0)
# Keys each process keeps in memory (least recently used out), how long a key that does not exist is remembered,
# and how many keys not in memory each process may look up in the database per second, in batched queries (at
# most one per 10 ms): past it they get 429 key_lookups_throttled, so a flood of made-up keys costs the database
# at most this many keys and 100 indexed queries a second per process.
TOLLWAY_KEY_CACHE_SIZE = env_int("TOLLWAY_KEY_CACHE_SIZE", 50000)
TOLLWAY_KEY_NEGATIVE_TTL_S = env_float("TOLLWAY_KEY_NEGATIVE_TTL_S", 30.0)
TOLLWAY_KEY_LOOKUPS_PER_S = env_float("TOLLWAY_KEY_LOOKUPS_PER_S", 500.0)
# After start-up, each process reads ahead the keys used in the last this many hours (up to the cache size), in
# the background: a restart does not make a large tenant's busy keys queue at the lookup cap. 0 turns it off.
TOLLWAY_KEY_WARM_START_H = env_float("TOLLWAY_KEY_WARM_START_H", 24.0)
for _name, _value, _low in (
    ("TOLLWAY_SNAPSHOT_REFRESH_S", TOLLWAY_SNAPSHOT_REFRESH_S, 0.01),
    ("TOLLWAY_CHANGES_MAX_BATCH", TOLLWAY_CHANGES_MAX_BATCH, 1),
    ("TOLLWAY_KEY_CACHE_SIZE", TOLLWAY_KEY_CACHE_SIZE, 1),
    ("TOLLWAY_KEY_NEGATIVE_TTL_S", TOLLWAY_KEY_NEGATIVE_TTL_S, 0),
    ("TOLLWAY_KEY_LOOKUPS_PER_S", TOLLWAY_KEY_LOOKUPS_PER_S, 1),
):
    if _value < _low:
        raise ImproperlyConfigured(f"{_name} must be at least {_low}, not {_value}")
TOLLWAY_USAGE_FLUSH_INTERVAL_S = env_float("TOLLWAY_USAGE_FLUSH_INTERVAL_S", 0.5)
TOLLWAY_USAGE_FLUSH_BATCH = env_int("TOLLWAY_USAGE_FLUSH_BATCH", 500)
# Where each process appends usage records before answering, so a hard crash loses none (see billing/outbox.py).
TOLLWAY_USAGE_OUTBOX_DIR = Path(env_str("TOLLWAY_USAGE_OUTBOX_DIR", str(DATA_DIR / "usage-outbox")))
# Usage durability: while the database is away, storing is retried with backoff up to this long between tries;
# each outbox segment keeps at most this many rows in memory (beyond, they are read back from disk).
TOLLWAY_USAGE_RETRY_MAX_S = env_float("TOLLWAY_USAGE_RETRY_MAX_S", 10.0)
TOLLWAY_USAGE_MEMORY_ROWS = env_int("TOLLWAY_USAGE_MEMORY_ROWS", 10000)
if TOLLWAY_USAGE_RETRY_MAX_S <= 0 or TOLLWAY_USAGE_MEMORY_ROWS < 1:
    raise ImproperlyConfigured("TOLLWAY_USAGE_RETRY_MAX_S must be positive and TOLLWAY_USAGE_MEMORY_ROWS at least 1")
# POST /v1/feedback on a call whose usage record is not stored yet (records are stored in batches) waits this
# long for it before answering 404: several flush intervals.
TOLLWAY_FEEDBACK_WAIT_S = env_float("TOLLWAY_FEEDBACK_WAIT_S", max(3.0, 6 * TOLLWAY_USAGE_FLUSH_INTERVAL_S))
# A cascade holds each checked step's stream in memory until its checks ran. Past either cap the step is not
# held further: its check fails as too long to hold and the call climbs (an unchecked answer is never released).
TOLLWAY_CASCADE_HOLD_MAX_CHUNKS = env_int("TOLLWAY_CASCADE_HOLD_MAX_CHUNKS", 4096)
TOLLWAY_CASCADE_HOLD_MAX_BYTES = env_int("TOLLWAY_CASCADE_HOLD_MAX_BYTES", 256 * 1024)
if TOLLWAY_CASCADE_HOLD_MAX_CHUNKS < 1 or TOLLWAY_CASCADE_HOLD_MAX_BYTES < 1:
    raise ImproperlyConfigured("TOLLWAY_CASCADE_HOLD_MAX_CHUNKS and TOLLWAY_CASCADE_HOLD_MAX_BYTES must be at least 1")
TOLLWAY_UPSTREAM_CONNECT_TIMEOUT_S = env_float("TOLLWAY_UPSTREAM_CONNECT_TIMEOUT_S", 5.0)
TOLLWAY_UPSTREAM_TIMEOUT_S = env_float("TOLLWAY_UPSTREAM_TIMEOUT_S", 120.0)
TOLLWAY_HTTP_TRANSPORT = env_str("TOLLWAY_HTTP_TRANSPORT", "aiohttp")  # aiohttp | httpx
# The built-in demo provider (routing/demo_upstream.py), served at /demo-upstream/v1. `make run` turns it on.
TOLLWAY_DEMO_UPSTREAM = env_bool("TOLLWAY_DEMO_UPSTREAM", False)

# --- Operations (routing/observability) -----------------------------------------------------------------
# Every worker process of a node writes its metrics here and /metrics sums them: keep it on local disk.
TOLLWAY_METRICS_DIR = Path(env_str("TOLLWAY_METRICS_DIR", str(DATA_DIR / "metrics")))
# When set, /metrics wants "Authorization: Bearer <token>".
TOLLWAY_METRICS_TOKEN = env_str("TOLLWAY_METRICS_TOKEN", "")
# Each /readyz check gets this long; they run at once, so the probe answers within about this too.
TOLLWAY_READY_TIMEOUT_S = env_float("TOLLWAY_READY_TIMEOUT_S", 1.0)
# Traces go to an OTLP/HTTP collector when this standard variable is set (e.g. http://otel-collector:4318).
OTEL_EXPORTER_OTLP_ENDPOINT = env_str("OTEL_EXPORTER_OTLP_ENDPOINT", "")
OTEL_SERVICE_NAME = env_str("OTEL_SERVICE_NAME", "tollway-gateway")

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A file, not memory, so gateway processes started by tests can share the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test-db.sqlite3")}

# Email: printed to the console on the embedded default; SMTP settings below for production.
EMAIL_BACKEND = env_str("TOLLWAY_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_FILE_PATH = env_str("TOLLWAY_EMAIL_FILE_PATH", str(DATA_DIR / "emails"))  # for the file backend
EMAIL_HOST = env_str("TOLLWAY_EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("TOLLWAY_EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("TOLLWAY_EMAIL_USER", "")
EMAIL_HOST_PASSWORD = env_str("TOLLWAY_EMAIL_PASSWORD", "")
EMAIL_USE_TLS = env_bool("TOLLWAY_EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("TOLLWAY_FROM_EMAIL", "Tollway <tollway@localhost>")
# Where people reach the console: used for links in emails.
TOLLWAY_PUBLIC_URL = env_str("TOLLWAY_PUBLIC_URL", "http://127.0.0.1:8000")

# Tests only: a fast password hasher (PBKDF2 dominates a suite that creates many users). Never in production.
if env_bool("TOLLWAY_TEST_FAST_PASSWORDS", False):
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
