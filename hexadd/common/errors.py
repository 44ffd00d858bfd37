"""The one exception users see: a clear one-line message, exit code 2."""


class HexaddError(Exception):
    """A problem with the user's input, config, files or environment."""

    def __str__(self):
        # One line whatever the message quotes (a YAML key, a file's line): escape line breaks.
        return super().__str__().replace("\r", "\\r").replace("\n", "\\n")


class ConfigError(HexaddError):
    pass


class DataError(HexaddError):
    pass


class ModelError(HexaddError):
    pass
