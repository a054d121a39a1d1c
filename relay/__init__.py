"""Relay: the one door through which parents reach a school."""
