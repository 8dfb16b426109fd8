"""Inkstone's wire protocol v1, sans-I/O: typed messages, codec, positions, edits, client.

No asyncio, sockets, Starlette or model code may be imported here (a test
checks): the server, the load generator, editor plugins and tests all
share this package.
"""

from protocol.client import DocumentClient
from protocol.codec import decode_client, decode_server, encode, to_wire
from protocol.edits import AppliedChange, apply_changes, convert_changes
from protocol.errors import ErrorCode, InkstoneError, PeerError, UsageError
from protocol.lifecycle import Lifecycle, Phase
from protocol.messages import (
    PROTOCOL_VERSION,
    SUBPROTOCOL,
    Ack,
    Change,
    ClientMessage,
    Dismiss,
    Edit,
    Error,
    Hello,
    Hint,
    Hints,
    Lang,
    Limits,
    Observe,
    Ping,
    Pong,
    Presence,
    Replace,
    Resume,
    Score,
    Scores,
    SentenceHints,
    ServerMessage,
    Snapshot,
    Stats,
    Trait,
    Unobserve,
    Update,
    Welcome,
)
from protocol.positions import Encoding, PositionIndex, check_no_surrogates, encoded_length

__all__ = [
    "PROTOCOL_VERSION",
    "SUBPROTOCOL",
    "Ack",
    "AppliedChange",
    "Change",
    "ClientMessage",
    "Dismiss",
    "DocumentClient",
    "Edit",
    "Encoding",
    "Error",
    "ErrorCode",
    "Hello",
    "Hint",
    "Hints",
    "InkstoneError",
    "Lang",
    "Lifecycle",
    "Limits",
    "Observe",
    "PeerError",
    "Phase",
    "Ping",
    "Pong",
    "PositionIndex",
    "Presence",
    "Replace",
    "Resume",
    "Score",
    "Scores",
    "SentenceHints",
    "ServerMessage",
    "Snapshot",
    "Stats",
    "Trait",
    "Unobserve",
    "Update",
    "UsageError",
    "Welcome",
    "apply_changes",
    "check_no_surrogates",
    "convert_changes",
    "decode_client",
    "decode_server",
    "encode",
    "encoded_length",
    "to_wire",
]
