"""Node side: the live reimager and the ``cmt-node`` hooks. Imports neither Flask nor SQLAlchemy."""
