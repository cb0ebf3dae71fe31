"""The example chat bot, the app to copy: a signed webhook (views.py) handing each message to
the bot (handler.py), whose replies leave through the outbox (sender.py)."""
