"""The boot server: a Flask app (``app.create_app``) run by gunicorn (``wsgi``, ``cmt server``).

Deliberately empty: importing ``cmt_slurm.server.wsgi`` in gunicorn's master must not pull in Flask or
prometheus-client before the multiprocess metrics directory is set (see :mod:`.metrics`).
"""
