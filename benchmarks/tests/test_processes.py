"""What the harness reads of a server's processes, through psutil."""

from __future__ import annotations

import socket
import subprocess
import sys

import psutil

from benchmarks.measuring import accepted_connections, memory
from benchmarks.running import _proc_cpu_seconds, descendants

# A parent that starts its child from a thread, as a trio program does, and
# accepts one connection on a port it prints.
PARENT = """
import socket, subprocess, sys, threading
child = []
sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
thread = threading.Thread(target=lambda: child.append(subprocess.Popen(sleeper)))
thread.start()
thread.join()
listener = socket.create_server(("127.0.0.1", 0))
print(child[0].pid, listener.getsockname()[1], flush=True)
held = listener.accept()
sum(range(3_000_000))  # some CPU time of its own
print("accepted", flush=True)
sys.stdin.read()
child[0].kill()
child[0].wait()
"""


def test_a_servers_processes_memory_cpu_and_connections_are_read() -> None:
    with subprocess.Popen(
        [sys.executable, "-c", PARENT],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as parent:
        assert parent.stdout is not None
        assert parent.stdin is not None
        child, port = (int(word) for word in parent.stdout.readline().split())
        assert descendants(parent.pid) == [parent.pid, child]
        with socket.create_connection(("127.0.0.1", port)):
            assert parent.stdout.readline() == "accepted\n"
            assert accepted_connections(parent.pid, port) == 1
            assert accepted_connections(parent.pid, port + 1 if port < 65535 else 1) == 0
        now, peak = memory(parent.pid)
        assert now > 1 << 20  # two Python interpreters' proportional share
        assert peak >= 1 << 20
        assert _proc_cpu_seconds(parent.pid) > 0
        parent.stdin.close()  # the parent kills its child, and ends
        assert parent.wait(timeout=30) == 0
    assert not psutil.pid_exists(child)
