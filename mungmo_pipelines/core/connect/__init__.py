"""Kafka Connect's record formats: the JsonConverter envelope, the type tables in each direction
(MariaDB → Connect for sources, Connect → MariaDB for sinks), Java's number text, dead letters."""
