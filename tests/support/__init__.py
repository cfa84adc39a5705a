"""What the tests share besides fixtures (those are in ``tests/conftest.py``):
child processes, cuts of a byte string, sockets and streams, TLS files, and
the conformance cases."""
