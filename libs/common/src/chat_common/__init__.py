"""Shared service plumbing: settings base, JSON logging, metrics, health, database."""
