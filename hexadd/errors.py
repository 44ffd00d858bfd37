"""The one exception users see: a clear one-line message, exit code 2."""


class HexaddError(Exception):
    """A problem with the user's input, config, files or environment."""


class ConfigError(HexaddError):
    pass


class DataError(HexaddError):
    pass


class ModelError(HexaddError):
    pass
