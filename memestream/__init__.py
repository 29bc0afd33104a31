"""The application shell: the `memestream` command and the local stack it runs.

This is the composition root: it may import every other package; none imports it.
"""

__version__ = "0.1.0"
