"""A minimal Django project that pushes per-user events through twisted-sse.

Configured from the environment: SSE_JWT_KEY (the daemon's --jwt-key, for cookie-token
mode), SSE_REDIS_URL (where Publisher publishes), SSE_URL (where the page opens its
EventSource: the daemon, on the same site), SSE_EXAMPLE_DB (the SQLite file).
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "sseapp",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "sseapp.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": False,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("SSE_EXAMPLE_DB", str(BASE_DIR.parent / "example.sqlite3")),
    }
}
USE_TZ = True
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

SSE_JWT_KEY = os.environ.get("SSE_JWT_KEY", "")
SSE_REDIS_URL = os.environ.get("SSE_REDIS_URL", "redis://127.0.0.1:6379/0")
SSE_URL = os.environ.get("SSE_URL", "http://127.0.0.1:8080")
