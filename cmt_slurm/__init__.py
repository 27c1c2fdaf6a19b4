"""cmt-slurm: on-demand bare-metal reprovisioning driven by Slurm node features."""

__version__ = "0.1.0"
