"""The demo machinery, apart from the bot: replaying a conversation through the webhook (as
a platform would: signed, in bursts, redelivering a 503), reporting what happened, and the
``demo`` and ``replay`` commands. Nothing here is needed to run the bot."""
