"""``make loadtest``: buyers shaped like a flash sale's, through Locust, against the stack."""
