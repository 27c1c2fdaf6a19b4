"""Slurm integration: the adapter over Slurm's CLI, config generation, and the controller-side hooks."""
