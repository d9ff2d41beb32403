"""Asset checks: consistency (정합) of each replicated table (``consistency.py``), its repair job
(``repair.py``), and the expiry's check (``verification.py``)."""
