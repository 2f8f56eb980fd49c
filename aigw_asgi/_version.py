"""The package version, in a module of its own.

Telemetry modules name the instrumentation library with it. Importing it from the package root
made them depend on ``aigw_asgi/__init__.py`` (which imports the whole gateway): a cycle that
only worked while their imports stayed lazy.
"""

__version__ = "0.1.0"
