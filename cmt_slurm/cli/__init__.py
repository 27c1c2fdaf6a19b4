"""The ``cmt`` admin command line."""
