"""Runs a module or script in a network namespace that holds only loopback (issue 14's rule for
every test that starts Ray: a local Ray instance otherwise talks over the machine's interface
address). Start it in a fresh namespace as root:

  unshare --net python tests/loopback_only.py -m experiments.run_search --ray_address=local ...
  unshare --net python tests/loopback_only.py tests/ray_scenarios.py OUT

It brings `lo` up (an ioctl: no iproute2 needed) and refuses to go on if any other interface is
there, so nothing it starts can reach another address.
"""

from __future__ import annotations

import fcntl
import runpy
import socket
import struct
import sys

SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
_IFREQ = "16sH14x"  # struct ifreq: the interface name and its flags


def bring_up_loopback() -> None:
  """Sets IFF_UP on `lo` (what `ip link set lo up` does)."""
  with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
    request = struct.pack(_IFREQ, b"lo", 0)
    flags = struct.unpack(_IFREQ, fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
    fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack(_IFREQ, b"lo", flags | IFF_UP))


def interfaces() -> list[str]:
  return [name for _, name in socket.if_nameindex()]


def main(argv: list[str]) -> None:
  if interfaces() != ["lo"]:
    sys.exit(f"loopback_only: refusing to run beside interfaces {interfaces()}: start me with "
             "`unshare --net` (as root)")
  bring_up_loopback()
  if argv[0] == "-m":
    sys.argv = argv[1:]
    runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
  else:
    sys.argv = argv
    runpy.run_path(argv[0], run_name="__main__")


if __name__ == "__main__":
  main(sys.argv[1:])
