"""Kafka: clients and topics, and the transactional producer every source commits through."""
