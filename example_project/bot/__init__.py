"""The example chat bot, the app to copy: a signed webhook (views.py) hands each message to
the bot (handler.py). Its replies leave through the outbox.

The platform and the model it talks to are stand-ins, in ``example_project/platform_stub/``.
"""
