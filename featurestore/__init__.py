"""Ferry feature store: online and offline stores, Kafka ingestion, REST API."""
