# gunicorn configuration for the boot server:
#   gunicorn -c server/gunicorn.conf.py 'cmt_slurm.server.wsgi:app'
# Settings come from cmt.toml ($CMT_CONFIG or /etc/cmt/cmt.toml) and CMT_* variables, exactly as for
# `cmt server` (which runs the same options in-process). Edit cmt.toml, not this file: bind, workers and
# threads are taken from there.
from cmt_slurm.config import load_settings
from cmt_slurm.server import wsgi as _wsgi

_settings = load_settings()
# Master side, once: data dir, database migrations, a fresh prometheus multiprocess directory.
_wsgi.prepare(_settings)
globals().update({k: v for k, v in _wsgi.gunicorn_options(_settings).items() if v is not None})
child_exit = _wsgi.child_exit
