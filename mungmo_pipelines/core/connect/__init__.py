"""Record formats other Kafka Connect connectors write, reproduced byte for byte."""
