"""The example chat bot: a signed webhook that follows threads and answers in them."""
