# What the client sends: the messages the command line names (each given as
# an argument, a file, or standard input), checked against the bound on a
# message. Input of unknown size (a pipe, a device) is copied to a
# temporary file first, up to the bound, in a mode that sends a length
# first; in one that does not (echo), it is sent as it is read
# (client/_streamed.py).
from __future__ import annotations

import errno
import os
import sys

from .._messages import Message, MessageTooLongError, SpoolError
from ..client._streamed import StreamedMessage
from ..protocol import rules_of
from ._client_options import ClientOptions
from ._readers import size_text

__all__ = ["InputError", "UsageError", "messages_of"]


class UsageError(Exception):
    """The arguments do not name what to send as they should; the message says how."""


class InputError(Exception):
    """The input cannot be read, or copied; the message says why."""


def messages_of(options: ClientOptions) -> list[Message]:
    """The messages the client was asked to send, none of them read yet.

    Raises:
        UsageError: If the arguments do not name exactly one source, or
            name several messages in a mode that sends one, or a message
            is longer than --max-message-size in a mode that sends its
            length first.
        InputError: If the input cannot be read, or its copy written.
    """
    sources = len(options.message) + (options.file is not None)
    if sources == 0:
        raise UsageError("give a MESSAGE, --file PATH, or - for standard input")
    if options.file is not None and options.message:
        raise UsageError("give either MESSAGE or --file, not both")
    if sources > 1 and not rules_of(options.mode).pipelines:
        raise UsageError(f"{options.mode} mode sends one message; framed mode sends several")
    if options.message.count("-") > 1:
        raise UsageError("standard input (-) can be read once")
    limit = options.max_message_size
    source = options.file or "standard input"
    # Without a length first, input of unknown size is sent as it is read.
    streams = not rules_of(options.mode).framed_requests
    try:
        if options.file is not None:
            messages = [_file(options.file, limit, streams=streams)]
        else:
            messages = [
                _standard_input(limit, streams=streams)
                if text == "-"
                else Message(os.fsencode(text))
                for text in options.message
            ]
    except MessageTooLongError:
        raise UsageError(
            f"{source} goes on past --max-message-size ({size_text(limit)}); give a larger"
            " --max-message-size if the server takes longer messages"
        ) from None
    except SpoolError as error:
        cause = error.__cause__
        reason = cause.strerror if isinstance(cause, OSError) and cause.strerror else str(cause)
        raise InputError(
            f"cannot copy {source} to a temporary file in {error.directory}"
            f" ({reason.lower()}); set TMPDIR to a directory with room"
        ) from None
    except OSError as error:
        raise InputError(
            f"cannot read {error.filename or options.file or 'standard input'}: "
            f"{(error.strerror or str(error)).lower()}"
        ) from None
    if rules_of(options.mode).framed_requests:
        for message in messages:
            if message.size > limit:
                for each in messages:
                    each.close()
                raise UsageError(
                    f"the message is {message.size:,} bytes, longer than --max-message-size"
                    f" ({size_text(limit)}); give a larger --max-message-size if the server"
                    " takes longer messages"
                )
    return messages


def _standard_input(limit: int, *, streams: bool) -> Message:
    if sys.stdin is None:
        raise OSError(errno.EBADF, "it is closed", "standard input")
    if streams and StreamedMessage.unsized(sys.stdin.fileno()):
        return StreamedMessage(sys.stdin.fileno())
    return Message.from_stream(sys.stdin.buffer, limit=limit)


def _file(path: str, limit: int, *, streams: bool) -> Message:
    if streams:
        fd = os.open(path, os.O_RDONLY)
        if StreamedMessage.unsized(fd):
            return StreamedMessage(fd, owned=True)
        os.close(fd)
    return Message.from_file(path, limit=limit)
