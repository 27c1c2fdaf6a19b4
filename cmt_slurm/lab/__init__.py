"""The virtual lab: QEMU nodes, their network, and the images and live env they boot."""
