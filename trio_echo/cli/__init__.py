"""The command line: `trio-echo server` and `trio-echo client`.

The parser, and a module that runs each command.
"""
