"""graphmner's version, in a module of its own: everything may read it without
importing the package's lazy attributes (``Tagger``), hence without a cycle."""
__version__ = '0.2.0'
