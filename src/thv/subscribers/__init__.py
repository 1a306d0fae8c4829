"""Subscribers: each reconciles one key from the Store's current state and writes back."""
