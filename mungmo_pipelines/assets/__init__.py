"""Assets: source tables, Kafka topics and target tables, one multi-asset per connector."""
