"""Child processes on this machine, for the test suite and the scripts that start servers (bench/, ui/screenshot.py):
a free loopback port, waiting for a port to accept connections, stopping a child."""

from __future__ import annotations

import socket
import subprocess
import time


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (also a port nothing listens on, until someone binds it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, seconds: float, poll: float = 0.3) -> bool:
    """True once 127.0.0.1:``port`` accepts a connection, False after ``seconds``."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(poll)
    return False


def stop_process(proc, timeout: float = 20) -> None:
    """Terminate a child process, killing it if it does not exit within ``timeout`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
