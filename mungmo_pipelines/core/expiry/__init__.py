"""Neighbourhood verification (동네인증) expiry: a verification is cancelled 30 days after it was granted.

The rule, exactly: a member is expired by a run whose cut-off time is ``as_of`` when
``verified = 1`` and ``verified_at <= as_of - ttl`` (``ttl`` = 30 days of 24 h by default). So a
verification granted at 09:00:00 on 1 May is cancelled by the 09:00 tick of 31 May (its age is
exactly 30 days) and still valid at 08:59:59. ``as_of`` is the schedule tick's own time, so a
late or replayed run does what its tick meant.

How it changes the table: in chunks of at most ``chunk_size`` members, each its own short
``READ COMMITTED`` transaction that locks the chunk's rows through the verification index
(``SELECT ... ORDER BY verified_at LIMIT n FOR UPDATE``), clears the flag, sets ``updated_at``
to the database's clock (so a ``timestamp+incrementing`` source picks the change up) and writes
one event per member into an outbox table in the same database. Rerunning a tick changes
nothing: expired members no longer match.

Events: after each chunk commits, the outbox is published to Kafka in one Kafka transaction per
batch and only then deleted. A publish failure fails the run and leaves the rows in the outbox;
the next run publishes them before anything else. So no event is lost, and a duplicate happens
only when the process dies between Kafka's commit and the outbox delete; each event carries a
stable ``event_id`` (``<member id>:<verified_at as epoch milliseconds>``) to dedupe on.
"""
