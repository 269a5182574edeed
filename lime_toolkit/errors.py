"""Errors meant for the user: the CLI prints their message in one clear sentence, no traceback."""


class UserError(Exception):
    """Bad input or a missing resource; the message names the problem and the fix."""


class PluginError(UserError):
    """A plugin is broken or misdeclared."""
