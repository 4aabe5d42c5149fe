"""Loki's HTTP API (read side: api/loki/read.py)."""
