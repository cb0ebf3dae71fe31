"""The example chat bot, the app to copy.

A signed webhook in ``views.py`` hands each message to the bot in ``handler.py``. Its
replies leave through the outbox. The platform and the model are stand-ins, in
``example_project/platform_stub/``.
"""
