"""Django settings for CLIP-Pro.

Every value comes from the environment, with defaults that are safe on one machine: SQLite, the
django-q2 ORM broker, and the `local` environment (`make run`): DEBUG off, a secret key made once in
CLIPPRO_DATA_DIR, localhost allowed. CLIPPRO_ENV=development turns DEBUG on; CLIPPRO_ENV=production
requires SECRET_KEY and ALLOWED_HOSTS and sends cookies over HTTPS only.
"""

import os
import tempfile
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from clippro_site.env import env_bool, env_float, env_int, env_list, env_str, object_store_options, secret_key_from_file

BASE_DIR = Path(__file__).resolve().parent.parent

# development: DEBUG, a fixed key. test: the suite (pytest). local (the default, `make run`): one self-hosted
# machine on plain HTTP. production (any other value): behind HTTPS, every secret given.
ENVIRONMENT = env_str("CLIPPRO_ENV", "local")
IS_DEVELOPMENT = ENVIRONMENT in {"development", "test"}
IS_PRODUCTION = ENVIRONMENT not in {"development", "test", "local"}

DEBUG = env_bool("DEBUG", default=ENVIRONMENT == "development")

DATA_DIR = Path(env_str("CLIPPRO_DATA_DIR", str(BASE_DIR / "var")))

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if IS_PRODUCTION:
        # Several web machines must share one key; a key made on each would sign users out between them.
        raise ImproperlyConfigured("SECRET_KEY must be set when CLIPPRO_ENV is 'production'")
    if IS_DEVELOPMENT:
        SECRET_KEY = "development-only-insecure-key-do-not-use-in-production"
    else:
        SECRET_KEY = secret_key_from_file(DATA_DIR / "secret_key")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [] if IS_PRODUCTION else ["localhost", "127.0.0.1", "[::1]"])
if not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must be set (comma-separated) when CLIPPRO_ENV is 'production'")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "captioning",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "clippro_site.urls"

# The site's pages (templates/) render with Jinja2 (clippro_site/jinja2.py): Django's template language spent
# 40-70% of a page's CPU time. The admin, its own pages and captioning/templates/admin/ keep Django's templates.
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.jinja2.Jinja2",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": False,
        "OPTIONS": {
            "environment": "clippro_site.jinja2.environment",
            "context_processors": [
                "clippro_site.jinja2.csrf",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "captioning.context_processors.caption_languages",
                "captioning.context_processors.model_preparation",
            ],
        },
    },
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
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

WSGI_APPLICATION = "clippro_site.wsgi.application"
ASGI_APPLICATION = "clippro_site.asgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # The web servers and the worker share the file. WAL: readers never wait for the writer. IMMEDIATE: a
    # transaction takes the write lock when it begins, so one that reads and then writes waits for its turn
    # (up to `timeout` seconds) instead of failing at once with "database is locked" (SQLite cannot upgrade a
    # read lock while another connection writes, whatever the timeout).
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        timeout=30,
        transaction_mode="IMMEDIATE",
        init_command="PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    )
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # A file, not SQLite's in-memory default, so a `qcluster` started by a test sees the test database;
    # one per test run, so engineers sharing a checkout do not collide.
    DATABASES["default"]["TEST"] = {
        "NAME": env_str(
            "CLIPPRO_TEST_SQLITE_PATH", str(Path(tempfile.gettempdir()) / f"clippro-test-{os.getpid()}.sqlite3")
        )
    }

elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # PostgreSQL's default random_page_cost (4) assumes spinning disks: on SSDs it preferred reading every photo
    # to looking 200 up by their primary key (a gallery's page: 15 ms instead of 0.5 at 10,000 photos). 1.1 is the
    # usual SSD setting; empty leaves the server's own (a connection pooler may refuse startup options).
    random_page_cost = env_str("POSTGRES_RANDOM_PAGE_COST", "1.1")
    if random_page_cost:
        options = DATABASES["default"].setdefault("OPTIONS", {})
        options["options"] = f"{options.get('options', '')} -c random_page_cost={float(random_page_cost)}".strip()
    # captioning.statements' SQL (the session and signed-in user read on every request, the gallery lists, the API's
    # lists, the photo and gallery pages) is prepared on each connection's first run of it, so PostgreSQL plans it
    # once per connection; Django's own queries never are. Set POSTGRES_PREPARED_STATEMENTS=0 behind a pooler that
    # hands one client's statements to several server connections (PgBouncer in transaction mode before 1.21, or
    # with max_prepared_statements = 0). They are planned for any values (plan_cache_mode): PostgreSQL otherwise went
    # back to planning Explore's query on every run, its estimate for the generic plan being a little higher. The
    # setting also covers PL/pgSQL's cached plans (the search triggers of migration 0009, which read by primary key).
    if env_bool("POSTGRES_PREPARED_STATEMENTS", True):
        options = DATABASES["default"].setdefault("OPTIONS", {})
        options["prepare_threshold"] = 0
        options["options"] = f"{options.get('options', '')} -c plan_cache_mode=force_generic_plan".strip()

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STORAGES = {
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(DATA_DIR / "media")},
    },
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if not IS_PRODUCTION
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
# Uploaded files are never served from a public URL: views check permissions first.
MEDIA_ROOT = DATA_DIR / "media"
# Media in an S3-compatible object store (AWS S3, MinIO, Cloudflare R2) through django-storages, when a bucket is
# named; keys come from boto3's own sources (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a profile, an instance
# role). Web servers and workers then need no shared file system: they read photos through the storage API.
MEDIA_BUCKET = env_str("AWS_STORAGE_BUCKET_NAME", "")
# 0: the web server streams each file from the store after its permission check. N > 0: it redirects to a URL
# signed for N seconds instead (less traffic through the web server; anyone holding the URL can fetch the file
# until it expires).
MEDIA_SIGNED_URL_SECONDS = env_int("MEDIA_SIGNED_URL_SECONDS", 0)
if MEDIA_BUCKET:
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": object_store_options(
            bucket=MEDIA_BUCKET,
            endpoint_url=env_str("AWS_S3_ENDPOINT_URL", ""),
            region=env_str("AWS_S3_REGION_NAME", ""),
            prefix=env_str("AWS_LOCATION", ""),
            addressing_style=env_str("AWS_S3_ADDRESSING_STYLE", ""),
        ),
    }
elif MEDIA_SIGNED_URL_SECONDS:
    raise ImproperlyConfigured("MEDIA_SIGNED_URL_SECONDS needs an object store: set AWS_STORAGE_BUCKET_NAME")
# Without `collectstatic` (one machine, laptops, tests), whitenoise serves static files straight from the
# source folders, so `make run` works from a fresh clone; production serves collected, hashed, compressed files.
WHITENOISE_USE_FINDERS = not IS_PRODUCTION
WHITENOISE_AUTOREFRESH = IS_DEVELOPMENT

if IS_PRODUCTION:
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
    CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# `manage.py serve` (one machine): gunicorn's worker processes, and how long one request may take.
WEB_WORKERS = env_int("WEB_WORKERS", 2)
WEB_TIMEOUT_SECONDS = env_int("WEB_TIMEOUT_SECONDS", 60)

# Sessions live in the database, as Django's own backend keeps them; ours reads them with less Python.
SESSION_ENGINE = "clippro_site.sessions"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "gallery-list"
LOGOUT_REDIRECT_URL = "home"

# The REST API (captioning/api/): token or session sign-in, one error format, pages of API_PAGE_SIZE, and
# request rates per minute (API_THROTTLE_*; read on every request, so they can be changed without a restart).
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "captioning.api.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticatedOrReadOnly"],
    "DEFAULT_PAGINATION_CLASS": "captioning.api.pagination.ApiPagination",
    "DEFAULT_FILTER_BACKENDS": ["captioning.api.filters.ApiFilterBackend"],
    "DEFAULT_THROTTLE_CLASSES": [
        "captioning.api.throttling.AnonymousRateThrottle",
        "captioning.api.throttling.UserRateThrottle",
    ],
    "DEFAULT_SCHEMA_CLASS": "captioning.api.schema.ApiAutoSchema",
    "EXCEPTION_HANDLER": "captioning.api.errors.api_exception_handler",
    "DEFAULT_RENDERER_CLASSES": [
        "captioning.api.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "PAGE_SIZE": env_int("API_PAGE_SIZE", 50),
}
API_THROTTLE_RATES = {
    "anonymous": env_str("API_THROTTLE_ANONYMOUS", "120/minute"),
    "user": env_str("API_THROTTLE_USER", "600/minute"),
    "uploads": env_str("API_THROTTLE_UPLOADS", "120/minute"),
    "sign_in": env_str("API_THROTTLE_SIGN_IN", "10/minute"),
}
API_UPLOAD_MAX_FILES = env_int("API_UPLOAD_MAX_FILES", 20)
SPECTACULAR_SETTINGS = {
    "TITLE": "CLIP-Pro API",
    "DESCRIPTION": (
        "Galleries, photos, captions, translations, models, the work queue and search of a CLIP-Pro server. "
        "Sign in with a token (`Authorization: Token <key>`, from POST /api/auth/token/) or a session cookie. "
        'Errors always have the shape {"error": {"status", "code", "message", "fields"}}; what you may '
        "not see answers 404."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",  # served from this server, so the docs work offline
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "PhotoStatusEnum": "captioning.models.Photo.Status",
        "TranslationStatusEnum": "captioning.models.Translation.Status",
        "ReviewStateEnum": "captioning.models.Caption.ReviewState",
        "CaptionSourceEnum": "captioning.models.Caption.Source",
        "VisibilityEnum": "captioning.models.Gallery.Visibility",
        "MemberRoleEnum": "captioning.models.GalleryMembership.Role",
    },
}

# Search (captioning/search.py): at most this many photos are ranked for one query.
SEARCH_MAX_RESULTS = env_int("SEARCH_MAX_RESULTS", 500)
# On PostgreSQL, caption search ranks, for each query word, only the newest this many photos holding it
# (captioning/search/words.py): its cost stays the same however many captions hold a common word.
SEARCH_WORD_CANDIDATES = env_int("SEARCH_WORD_CANDIDATES", 2000)
# A photo is found by image when its CLIP cosine with the query is at least max(floor, best photo's - margin).
# Each model's CLIP has its own (captioning/search/image.py, `image_relevance`); set, these replace them all.
SEARCH_IMAGE_FLOOR = env_float("SEARCH_IMAGE_FLOOR", None)
SEARCH_IMAGE_MARGIN = env_float("SEARCH_IMAGE_MARGIN", None)

# Selecting many photos in a grid (captioning/services/selection.py, captioning/downloads.py): at most this many
# photos are captioned again or deleted by one request, and at most ZIP_MAX_PHOTOS go into one zip.
SELECTION_MAX_PHOTOS = env_int("SELECTION_MAX_PHOTOS", 500)
ZIP_MAX_PHOTOS = env_int("ZIP_MAX_PHOTOS", 200)

# django-q2: the ORM broker by default (no extra service); Redis when REDIS_URL is set.
# `retry` must stay above `timeout`, or a slow task is handed out again while still running.
CAPTION_TASK_TIMEOUT_SECONDS = env_int("CAPTION_TASK_TIMEOUT_SECONDS", 600)
REDIS_URL = env_str("REDIS_URL")
Q_CLUSTER = {
    "name": env_str("Q_CLUSTER_NAME", "clippro"),
    "workers": env_int("Q_WORKERS", 1),
    "timeout": CAPTION_TASK_TIMEOUT_SECONDS,
    "retry": CAPTION_TASK_TIMEOUT_SECONDS + 60,
    "max_attempts": env_int("Q_MAX_ATTEMPTS", 3),
    "queue_limit": 50,
    "catch_up": False,
    "ack_failures": True,
    "save_limit": 1000,
    "label": "Task queue",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

# Sign-in limits and the shared cache (captioning/sign_in.py). Request counts (API_THROTTLE_*) and failed
# sign-ins live in the cache, so every server process counts the same ones: a table in the database by default
# (`migrate` creates it), Redis when REDIS_URL is set.
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "clippro_cache"}}
# A client's address is REMOTE_ADDR, or behind this many reverse proxies of yours, the address the outermost of
# them saw (X-Forwarded-For's Nth entry from the right). With 0 the header is ignored: any client can write it.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)
REST_FRAMEWORK["NUM_PROXIES"] = TRUSTED_PROXY_COUNT  # for DRF's own throttles; ours ask captioning.sign_in
# django-axes counts failed sign-ins (the log-in page, POST /api/auth/token/, the admin) per account and per
# address; SIGN_IN_FAILURE_LIMIT of either within SIGN_IN_LOCKOUT_MINUTES locks it for that long, and each try
# while locked starts the wait again. `manage.py axes_reset_username NAME` (or axes_reset_ip) lifts a lock.
INSTALLED_APPS += ["axes"]
MIDDLEWARE += ["axes.middleware.AxesMiddleware"]  # last, as axes asks: it turns a lockout into the answer
# A session names the backend that signed it in: sessions made before AccountBackend replaced Django's ModelBackend
# (which it extends) sign in again.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "captioning.sign_in.AccountBackend"]
AXES_HANDLER = "axes.handlers.cache.AxesCacheHandler"
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_FAILURE_LIMIT = env_int("SIGN_IN_FAILURE_LIMIT", 10)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("SIGN_IN_LOCKOUT_MINUTES", 15))
AXES_CLIENT_IP_CALLABLE = "captioning.sign_in.client_address"
AXES_LOCKOUT_CALLABLE = "captioning.sign_in.lockout_response"
AXES_VERBOSE = False  # no banner on every manage.py command
AXES_ENABLE_ADMIN = False  # its admin pages list the database handler's records; the cache handler keeps none

# Captioning (captioning/jobs.py, captioning/services/worker.py). A worker renews its claim on the photos of the
# batch it runs every CAPTION_HEARTBEAT_SECONDS; a claim not renewed for CAPTION_LEASE_SECONDS is abandoned (it was
# killed) and the sweep (every minute) hands it on: lease + one minute < 2 minutes from death to pickup.
# What `make run` captions with (captioning/services/model_preparation.py): a catalogue name (mlcore/catalogue.json),
# "demo", a registered model's name or a checkpoint directory. Without internet it falls back to the demo model.
CAPTION_MODEL = env_str("CAPTION_MODEL", "clipcap-coco")
CAPTION_MODEL_PATH = Path(env_str("CAPTION_MODEL_PATH", str(DATA_DIR / "models" / "demo")))
CAPTION_DEVICE = env_str("CAPTION_DEVICE", "auto")
# int8 matmuls for GPT-2 and CLIP's image transformer when the worker runs on a CPU (ignored on a GPU).
CAPTION_INT8 = env_bool("CAPTION_INT8", False)
CAPTION_BATCH_SIZE = env_int("CAPTION_BATCH_SIZE", 16)
CAPTION_MAX_ATTEMPTS = env_int("CAPTION_MAX_ATTEMPTS", 3)
CAPTION_RETRY_DELAY_SECONDS = env_int("CAPTION_RETRY_DELAY_SECONDS", 30)
CAPTION_LEASE_SECONDS = env_int("CAPTION_LEASE_SECONDS", 30)
CAPTION_HEARTBEAT_SECONDS = env_int("CAPTION_HEARTBEAT_SECONDS", 5)
CAPTION_BEAM_SIZE = env_int("CAPTION_BEAM_SIZE", 5)
CAPTION_MAX_LENGTH = env_int("CAPTION_MAX_LENGTH", 40)
if not 0 < CAPTION_HEARTBEAT_SECONDS * 3 <= CAPTION_LEASE_SECONDS:
    # Room for two late heartbeats (a database busy with another writer) before a live claim looks abandoned.
    raise ImproperlyConfigured("CAPTION_LEASE_SECONDS must be at least 3 times CAPTION_HEARTBEAT_SECONDS (> 0)")

# Uploads (captioning/images.py): refused above these sizes, before anything is decoded.
UPLOAD_MAX_BYTES = env_int("UPLOAD_MAX_BYTES", 25 * 1024 * 1024)
UPLOAD_MAX_PIXELS = env_int("UPLOAD_MAX_PIXELS", 50_000_000)
# Images one process decodes at once (a 49 MP one takes about 200 MB while decoding); more uploads wait.
UPLOAD_MAX_CONCURRENT_DECODES = env_int("UPLOAD_MAX_CONCURRENT_DECODES", 2)
THUMBNAIL_SIZE = env_int("THUMBNAIL_SIZE", 480)
DISPLAY_IMAGE_SIZE = env_int("DISPLAY_IMAGE_SIZE", 2048)
FILE_UPLOAD_PERMISSIONS = 0o640
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o750

# Caption translations (captioning/translators.py). Captions are written in English; these are offered.
CAPTION_LANGUAGES = env_list("CAPTION_LANGUAGES", ["fr", "de", "es", "it", "pt", "nl", "pl", "ja", "zh-CN"])
DEEPL_API_KEY = env_str("DEEPL_API_KEY", "")
DEEPL_USE_FREE_API = env_bool("DEEPL_USE_FREE_API", True)
MICROSOFT_TRANSLATOR_KEY = env_str("MICROSOFT_TRANSLATOR_KEY", "")
MICROSOFT_TRANSLATOR_REGION = env_str("MICROSOFT_TRANSLATOR_REGION", "")
# Which outside service translates caption text: none by default, so no caption leaves this server until an admin
# chooses one. google (no key), deepl or microsoft; setting DeepL's or Microsoft's key chooses that service.
TRANSLATION_PROVIDER = env_str(
    "TRANSLATION_PROVIDER", "deepl" if DEEPL_API_KEY else "microsoft" if MICROSOFT_TRANSLATOR_KEY else ""
)
if TRANSLATION_PROVIDER not in {"", "google", "deepl", "microsoft"}:
    raise ImproperlyConfigured(
        f"TRANSLATION_PROVIDER={TRANSLATION_PROVIDER!r}: use google, deepl or microsoft, or leave it empty for none"
    )
TRANSLATION_TIMEOUT_SECONDS = env_int("TRANSLATION_TIMEOUT_SECONDS", 10)
# Where the provider is reached; empty means its public address (captioning/translators.py). Set for a proxy or a
# mirror.
TRANSLATION_SERVICE_URL = env_str("TRANSLATION_SERVICE_URL", "")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}

# COCO downloads for `manage.py encode_coco`. Point them at a mirror, or at a local copy served over HTTP.
COCO_ANNOTATIONS_URL = env_str(
    "COCO_ANNOTATIONS_URL", "http://images.cocodataset.org/annotations/annotations_trainval2017.zip"
)
COCO_IMAGES_BASE_URL = env_str("COCO_IMAGES_BASE_URL", "http://images.cocodataset.org")
