"""Builders behind :mod:`cmt_slurm.lab.images`: the live reimager's kernel + initramfs and the test OS images.

Everything slow lands in a content-addressed cache (:mod:`.cache`); the recipes and the live env's own files
live in the repository under ``images/``. Only the lab, the tests and ``images/build.py`` use this package:
nothing on a node imports it.
"""
