"""A small chat product built on chatstate: the bot (``bot/``, to copy) and its demo (``demo/``)."""
