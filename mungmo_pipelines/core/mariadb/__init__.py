"""MariaDB: the dialect (quoting, limits, error classes, zones), sessions, the catalog, the named lock,
and the binary log. Everything here speaks to the server; nothing here knows Kafka or Connect."""
