"""Helpers the tests share: real processes, a real Redis, local receivers."""
