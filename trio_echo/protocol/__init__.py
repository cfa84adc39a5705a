"""The sans-IO core: the framer, its events and errors, and `EchoProtocol`.

`EchoProtocol` is one connection's state machine in each mode. Nothing here
does I/O or imports an I/O library, nor anything else of trio_echo: any pump
(a trio task, an asyncio protocol, a thread) drives it the same way. The
public names are exported from `trio_echo`; the rest are for trio_echo's
server and client.
"""

from ._actions import (
    CHECK_UNREAD as CHECK_UNREAD,
    CLOSE as CLOSE,
    HANDSHAKE as HANDSHAKE,
    PAUSED as PAUSED,
    SEND_EOF as SEND_EOF,
    YIELD as YIELD,
    Action as Action,
    Receive as Receive,
)
from ._declarations import ConfigError as ConfigError
from ._errors import (
    LocalProtocolError as LocalProtocolError,
    ProtocolError as ProtocolError,
    Reason as Reason,
    RemoteProtocolError as RemoteProtocolError,
)
from ._events import (
    NEED_DATA as NEED_DATA,
    EndOfMessage as EndOfMessage,
    EndOfStream as EndOfStream,
    Event as Event,
    Header as Header,
    Payload as Payload,
)
from ._framer import (
    DEFAULT_MAX_MESSAGE_SIZE as DEFAULT_MAX_MESSAGE_SIZE,
    CountFramer as CountFramer,
    encode_header as encode_header,
    encode_message as encode_message,
)
from ._limits import Limits as Limits
from ._modes import Mode as Mode, ModeRules as ModeRules, rules_of as rules_of
from ._outbox import BUFFER_OVERHEAD as BUFFER_OVERHEAD, Chunk as Chunk
from ._protocol import EchoProtocol as EchoProtocol
from ._state import CLEAN_OUTCOMES as CLEAN_OUTCOMES, Outcome as Outcome, Unread as Unread
from ._steps import (
    MAX_MESSAGES_PER_STEP as MAX_MESSAGES_PER_STEP,
    READ_SIZE_MAX as READ_SIZE_MAX,
    READ_SIZE_MIN as READ_SIZE_MIN,
    STEP_BYTES as STEP_BYTES,
)
from ._timers import Deadline as Deadline, Expiry as Expiry
