"""Shared pieces of the log pipeline: settings, record model, queue, Cassandra store, metrics."""
