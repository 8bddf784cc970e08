"""Notification delivery: the channels of genesis.yaml `notifications` (channels.py) and
the worker that delivers to them off the event loop (dispatcher.py)."""
