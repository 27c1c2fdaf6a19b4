#!/usr/bin/env python3
"""Build (or reuse from the cache) the live env and the test OS images; print build times and sizes.

    images/build.py [--force] [--catalogue DIR] [live] [debian12] [debian13] ...   (default: all)

Cache: ${CMT_CACHE:-~/.cache/cmt-slurm}. OS images need root (mmdebstrap --mode=root).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cmt_slurm.errors import CmtError
from cmt_slurm.lab import images


def mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", nargs="*", help="live and/or recipe names (default: live + every recipe)")
    parser.add_argument("--force", action="store_true", help="rebuild even when the cache has the entry")
    parser.add_argument("--catalogue", type=Path, help="write manifests (and link the qcow2s) into DIR")
    args = parser.parse_args(argv)
    try:
        targets = args.what or ["live", *images.image_recipes()]
        for what in targets:
            t0 = time.monotonic()
            if what == "live":
                env = images.ensure_live_env(force=args.force)
                state = f"built in {env.base_build_seconds:.1f} s" if env.built_now else "cached"
                s = env.sizes
                print(
                    f"live: {state} ({time.monotonic() - t0:.1f} s now); kernel {env.kernel_release} "
                    f"{mb(s['vmlinuz'])}, base initrd {mb(s['base_initrd'])} (cpio {mb(s['base_cpio'])}, "
                    f"python stdlib {mb(s['python_stdlib'])}), overlay {s['overlay'] / 1e3:.0f} kB"
                    f" -> {env.directory}"
                )
                continue
            img = images.ensure_image(what, args.catalogue, force=args.force)
            state = f"built in {img.build_seconds:.1f} s" if img.built_now else "cached"
            i = img.info
            print(
                f"{what}: {state} ({time.monotonic() - t0:.1f} s now); {img.name} glibc {img.glibc} kernel "
                f"{img.kernel_release}; tree {mb(i['tree_bytes'])}, ext4 {mb(i['fs_bytes'])}, "
                f"qcow2 {mb(img.size)} (virtual {mb(img.virtual_size)}) -> {img.path}"
                + (f"; manifest {img.manifest_path}" if img.manifest_path else "")
            )
    except CmtError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
