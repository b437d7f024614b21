"""Persistence: users, the inquiry log and the database they live in."""
