"""Pure decisions of Relay: classification, routing plans, school calendar, directory model.

Nothing here does I/O or reads the clock: time is always an argument.
"""
