"""Stand-ins for what a real bot gets from elsewhere: its chat platform and its model.

A real bot replaces them. The platform's SDK parses and verifies deliveries, as
``message.py`` and ``signing.py`` do here. It posts replies, as ``sender.py`` does. An LLM
client writes them, as ``model.py`` does. The app to copy is ``example_project/bot/``.
"""
