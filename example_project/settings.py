"""Settings of the example project: a chat bot on chatstate, SQLite by default.

These are development settings, with ``DEBUG=True`` and a published signing secret. Run
them, read them, copy what you need. Environment variables override what a deployment
would change. They are ``EXAMPLE_SQLITE_PATH``, the database file, ``BOT_SIGNING_SECRET``,
``BOT_THINK_SECONDS`` and ``DJANGO_SECRET_KEY``.
"""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-project-insecure-development-key")
DEBUG = True
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]"]
USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "chatstate",
    "example_project.bot",
    "example_project.demo",  # the `demo` and `replay` commands; the bot runs without them
    "bench",  # manage.py chatstate_bench, the source tree's benchmark; not in the wheel
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "example_project.urls"
WSGI_APPLICATION = "example_project.wsgi.application"
ASGI_APPLICATION = "example_project.asgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
STATIC_URL = "/static/"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("EXAMPLE_SQLITE_PATH", str(BASE_DIR / "db.sqlite3")),
        # The threaded development server writes from several threads at once.
        "OPTIONS": {"timeout": 20},
    }
}

# The bot's state lives in this project's database, in its own namespace.
CHATSTATE = {
    "ADAPTER": "chatstate.adapters.database.DatabaseStateAdapter",
    "NAMESPACE": "example-bot",
    "DEDUPE_LIMIT": 10_000,
    # Keep every message id for 15 minutes, whatever the limit. Platforms redeliver late.
    # Slack does after about 1 and 5 minutes; docs/settings.rst lists others.
    "DEDUPE_MIN_AGE": 900,
    "LOCK_TTL": 60,
    # The bot's replies leave through the outbox. A dispatcher hands each to this function
    # after the commit that stored it.
    "OUTBOX_SENDER": "example_project.platform_stub.sender.post_reply",
}

# The sender logs each reply it posts at INFO; the console shows them.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout"}},
    "loggers": {
        "example_project.platform_stub.sender": {
            "handlers": ["console"],
            "level": "INFO",
            "propagate": False,
        }
    },
}

# The webhook. example_project/bot/conf.py lists every BOT_* setting and its default.
BOT_SIGNING_SECRET = os.environ.get("BOT_SIGNING_SECRET", "example-signing-secret")
BOT_MAX_BODY_BYTES = 16 * 1024
BOT_SIGNATURE_MAX_AGE = 300
# Seconds the bot "thinks" per reply while holding the thread, in place of a model call.
# So a burst of messages visibly queues behind the one being answered.
BOT_THINK_SECONDS = float(os.environ.get("BOT_THINK_SECONDS", "0.2"))
