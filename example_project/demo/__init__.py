"""The demo machinery, apart from the bot; the bot runs without it.

It replays a conversation through the webhook as a platform would. Requests are signed,
come in bursts, and a 503 is redelivered. It reports what happened. It holds the ``demo``
and ``replay`` commands."""
