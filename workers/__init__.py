"""Queue consumers: drain batches from Redis (RQ) and write them to Cassandra in bulk."""
