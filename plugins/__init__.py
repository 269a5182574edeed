"""The built-in lime-toolkit plugins (imported as ``lime_toolkit_plugins``)."""
