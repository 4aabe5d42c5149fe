"""The HTTP front end: validates fluent-bit batches, enqueues them, serves queries and metrics."""
