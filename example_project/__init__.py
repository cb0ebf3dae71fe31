"""A small chat product built on chatstate: a signed webhook, a bot, replay and a demo."""
