"""Presence service: who is online, from gateway heartbeats; durable last_seen."""
