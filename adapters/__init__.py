"""Outbound channels, one module each, behind `adapters.base.Channel`."""
