"""Integrations with other projects, each behind its own extra, like ``chatstate[celery]``."""
