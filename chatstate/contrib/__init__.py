"""Integrations with other projects, each behind its own extra (``chatstate[celery]``)."""
