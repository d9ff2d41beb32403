"""Asset checks: the expiry's (``verification.py``)."""
