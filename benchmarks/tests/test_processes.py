"""What the harness reads of a server's processes, through psutil."""

from __future__ import annotations

import socket
import subprocess
import sys

import psutil
import pytest

from benchmarks.measuring import accepted_connections
from benchmarks.running import (
    CONTROL_GROUP,
    ServerProcess,
    _proc_cpu_times,
    _proc_memory,
    descendants,
    memory_measure,
)

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
        memory = _proc_memory(parent.pid)
        assert memory.now > 1 << 20  # two Python interpreters' proportional share
        assert memory.peak >= 1 << 20
        assert _proc_cpu_times(parent.pid).user > 0
        parent.stdin.close()  # the parent kills its child, and ends
        assert parent.wait(timeout=30) == 0
    assert not psutil.pid_exists(child)


# A server whose child holds 64 MiB for a moment and exits, and which spends
# CPU in user space, then in the kernel, before it says it listens.
TREE = """
import os, subprocess, sys, time
subprocess.run([sys.executable, "-c", "b = bytearray(64 << 20); b[::4096] = b'x' * (16 << 10)"])
sum(range(20_000_000))  # user space
zero = os.open("/dev/zero", os.O_RDONLY)
for _ in range(8_000):
    os.read(zero, 1 << 20)  # the kernel, filling 1 MiB
print("listening on 127.0.0.1:1", flush=True)
time.sleep(60)
"""


def test_the_meter_counts_a_whole_process_tree_its_peak_and_its_kernel_time() -> None:
    if memory_measure() != CONTROL_GROUP:
        pytest.skip("no control group can be made here (the /proc fallback is tested above)")
    process = ServerProcess([sys.executable, "-c", TREE])
    try:
        process.wait_for_port()
        cpu, memory = process.cpu(), process.memory()
    finally:
        process.stop()
    # The child's 64 MiB is in the group's peak, though the child has exited
    # and the parent never held it.
    assert memory.peak - memory.now > 48 << 20
    assert cpu.user > 0.15
    assert cpu.system > 0.1
    assert cpu.total == pytest.approx(cpu.user + cpu.system)
