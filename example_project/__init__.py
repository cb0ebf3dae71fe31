"""A small chat product built on chatstate: the bot in ``bot/``, to copy, and its demo."""
