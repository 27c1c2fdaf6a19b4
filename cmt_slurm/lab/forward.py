"""A TCP forwarder from the host's loopback into the lab namespace: the dashboard and the API from outside.

``python -m cmt_slurm.lab.forward --netns NS --listen 127.0.0.1:PORT --to 10.77.0.1:8080``. The listening
socket is made in the host namespace, then the process enters ``NS``: every connection it opens from
then on starts inside the lab. Nothing in the lab becomes reachable from anywhere but loopback.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import selectors
import socket
import threading

CLONE_NEWNET = 0x40000000


def enter_netns(name: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({name}): {os.strerror(err)}")
    finally:
        os.close(fd)


def _pipe(a: socket.socket, b: socket.socket) -> None:
    sel = selectors.DefaultSelector()
    sel.register(a, selectors.EVENT_READ, b)
    sel.register(b, selectors.EVENT_READ, a)
    try:
        while True:
            for key, _ in sel.select(timeout=600):
                src = key.fileobj
                assert isinstance(src, socket.socket)
                data = src.recv(65536)
                if not data:
                    return
                key.data.sendall(data)
    except OSError:
        return
    finally:
        sel.close()
        a.close()
        b.close()


def serve(listener: socket.socket, target: tuple[str, int]) -> None:
    while True:
        client, _ = listener.accept()
        try:
            upstream = socket.create_connection(target, timeout=10)
        except OSError:
            client.close()
            continue
        upstream.settimeout(None)
        threading.Thread(target=_pipe, args=(client, upstream), daemon=True).start()


def _addr(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cmt_slurm.lab.forward")
    parser.add_argument("--netns", required=True, help="lab namespace NAME to forward into")
    parser.add_argument("--listen", required=True, metavar="HOST:PORT", help="loopback address to listen on")
    parser.add_argument("--to", required=True, metavar="HOST:PORT", help="address inside the namespace")
    args = parser.parse_args(argv)
    host, port = _addr(args.listen)
    if not host.startswith("127."):
        parser.error("--listen must be a loopback address (127.0.0.0/8)")
    listener = socket.create_server((host, port), reuse_port=False)
    enter_netns(args.netns)
    serve(listener, _addr(args.to))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
