"""The example bot's webhook, through its real views, on every backend of the run."""
