"""A module with none of the known entry points."""


def helper():
    return 1
