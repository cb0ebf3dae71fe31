"""Stand-ins for what a real bot gets from elsewhere: its chat platform and its model.

A real bot replaces them: the platform's SDK parses and verifies deliveries (message.py,
signing.py) and posts replies (sender.py); an LLM client writes them (model.py). The app to
copy is ``example_project/bot/``.
"""
