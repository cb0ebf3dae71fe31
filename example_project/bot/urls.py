from django.urls import path

from example_project.bot import views

app_name = "bot"
urlpatterns = [
    path("webhook", views.webhook, name="webhook"),
    path("webhook-async", views.webhook_async, name="webhook-async"),
]
