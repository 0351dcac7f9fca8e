"""Errors of the chain layer."""


class ChainError(Exception):
    """The chain could not be reached, or answered something unexpected."""
