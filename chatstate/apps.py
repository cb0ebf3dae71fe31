from django.apps import AppConfig


class ChatStateConfig(AppConfig):
    name = "chatstate"
    verbose_name = "Chat state"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from chatstate import checks, registry  # noqa: F401  (registers checks and signals)
