from django.apps import AppConfig


class BotConfig(AppConfig):
    name = "example_project.bot"
    label = "bot"
    verbose_name = "Example chat bot"
