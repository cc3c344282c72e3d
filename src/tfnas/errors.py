"""The one exception type that means "the user gave us something wrong".

The CLI turns a :class:`TfnasError` into a single sentence on stderr and exit status 2;
anything else escaping is a bug and keeps its traceback.
"""


class TfnasError(Exception):
    """A user error: bad file, bad flag, missing data. Its message is one full sentence."""


class SpaceError(TfnasError):
    """A search-space file that cannot be used."""


class ArchitectureError(TfnasError):
    """An architecture file that does not fit its search space."""


class DataError(TfnasError):
    """A dataset that cannot be found or read."""
