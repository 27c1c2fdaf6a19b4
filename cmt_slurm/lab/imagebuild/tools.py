"""Running the build tools (mmdebstrap, mkfs.ext4, qemu-img, apt-get, ...) with errors users can act on."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from ...errors import BackendError, ConfigError

#: Where the build tools live; also the PATH mmdebstrap gets (trixie's adduser refuses unusual ones).
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def need(tool: str, package: str) -> str:
    """Absolute path of ``tool``, or a ConfigError naming the Debian package to install."""
    found = shutil.which(tool, path=SYSTEM_PATH + ":" + os.environ.get("PATH", ""))
    if found is None:
        raise ConfigError(
            f"{tool} is not installed (needed to build images)",
            hint=f"run scripts/install-deps (or apt-get install {package})",
        )
    return found


def run(
    argv: Sequence[str | Path],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    log: Path | None = None,
    input_bytes: bytes | None = None,
    timeout: float = 3600,
) -> str:
    """Run ``argv``; return its stdout. On failure raise BackendError quoting the last lines of its output.

    With ``log``, stdout and stderr are appended to that file instead of being captured.
    """
    args = [str(a) for a in argv]
    full_env = {**os.environ, **(env or {})}
    try:
        if log is not None:
            with log.open("ab") as fh:
                fh.write(("$ " + " ".join(args) + "\n").encode())
                fh.flush()
                proc = subprocess.run(
                    args,
                    cwd=cwd,
                    env=full_env,
                    stdout=fh,
                    stderr=subprocess.STDOUT,
                    input=input_bytes,
                    timeout=timeout,
                    check=False,
                )
            out, err = b"", log.read_bytes()[-3000:]
        else:
            proc = subprocess.run(
                args,
                cwd=cwd,
                env=full_env,
                capture_output=True,
                input=input_bytes,
                timeout=timeout,
                check=False,
            )
            out, err = proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        raise BackendError(
            f"{Path(args[0]).name} timed out after {timeout:.0f} s", hint=" ".join(args)
        ) from exc
    except FileNotFoundError as exc:
        raise ConfigError(f"{args[0]} is not installed", hint="run scripts/install-deps") from exc
    if proc.returncode != 0:
        tail = [ln for ln in err.decode(errors="replace").splitlines() if ln.strip()][-1:] or ["(no output)"]
        where = f"; full log: {log}" if log else ""
        raise BackendError(
            f"{Path(args[0]).name} failed (exit status {proc.returncode}): {tail[0][:300]}",
            hint=f"command: {' '.join(args)}{where}",
        )
    return out.decode(errors="replace")


def package_versions(packages: Sequence[str]) -> dict[str, str]:
    """Installed versions of Debian packages in one dpkg-query call ('' for a package not installed)."""
    found = dict.fromkeys(packages, "")
    try:
        proc = subprocess.run(
            ["dpkg-query", "-W", "-f=${Package}\t${Version}\t${db:Status-Abbrev}\n", *packages],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
    except FileNotFoundError:
        return found
    for line in proc.stdout.splitlines():
        name, _, rest = line.partition("\t")
        version, _, status = rest.partition("\t")
        if name.split(":")[0] in found and status.startswith("ii"):
            found[name.split(":")[0]] = version
    return found


def package_version(package: str) -> str:
    """Installed version of a Debian package, or '' when it is not installed."""
    try:
        proc = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        return ""
    return proc.stdout.strip() if proc.returncode == 0 else ""
