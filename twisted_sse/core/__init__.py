"""The core: pure, transport-neutral rules of twisted-sse (no HTTP, no Redis, no I/O).

Framing (an event to bytes), ids and history rules, the envelope of durable events, the
fan-out hub, blocks, resume (`Replay`), channel names and patterns, settings, counters,
and the in-process broker. The web and Redis edges use these names; this package uses
neither of them (a test checks its imports).
"""

from twisted_sse.core._block import Block
from twisted_sse.core._channels import (
    CHANNEL_RULE,
    MAX_CHANNELS_PER_STREAM,
    MAX_EVENT_TYPE,
    MAX_PATTERN_LENGTH,
    ChannelPatterns,
    checked_publication,
    valid_channel,
    valid_pattern,
)
from twisted_sse.core._counters import Counters, Histogram
from twisted_sse.core._envelope import MARK, raw, unpack
from twisted_sse.core._framing import Event, check_field, encode, encode_comment, encode_retry
from twisted_sse.core._history import (
    MAX_ID_LENGTH,
    ChannelHistory,
    EventKey,
    IdClock,
    Missed,
    format_id,
    page_of,
    parse_id,
)
from twisted_sse.core._hub import Hub
from twisted_sse.core._interfaces import Broker, History, Listener, Receiver
from twisted_sse.core._logs import LEVELS, Budget, JsonLines, Logger, set_level
from twisted_sse.core._memory_broker import MemoryBroker
from twisted_sse.core._pacer import Pacer
from twisted_sse.core._publications import BatchRefused, Publication, PublishQueue, Receipt, parse_batch
from twisted_sse.core._replay import LOST_EVENT_TYPE, Gap, HistoryPages, Replay, WholePage
from twisted_sse.core._settings import RedisAddress, Settings
from twisted_sse.core._shared_reads import SharedReads

__all__ = [
    "Block",
    "CHANNEL_RULE",
    "MAX_CHANNELS_PER_STREAM",
    "MAX_EVENT_TYPE",
    "MAX_PATTERN_LENGTH",
    "ChannelPatterns",
    "checked_publication",
    "valid_channel",
    "valid_pattern",
    "Counters",
    "Histogram",
    "MARK",
    "raw",
    "unpack",
    "Event",
    "check_field",
    "encode",
    "encode_comment",
    "encode_retry",
    "MAX_ID_LENGTH",
    "ChannelHistory",
    "EventKey",
    "IdClock",
    "Missed",
    "format_id",
    "parse_id",
    "page_of",
    "Hub",
    "Broker",
    "History",
    "Listener",
    "Receiver",
    "LEVELS",
    "Budget",
    "JsonLines",
    "Logger",
    "set_level",
    "MemoryBroker",
    "Pacer",
    "BatchRefused",
    "parse_batch",
    "Publication",
    "PublishQueue",
    "Receipt",
    "LOST_EVENT_TYPE",
    "Gap",
    "Replay",
    "HistoryPages",
    "RedisAddress",
    "Settings",
    "SharedReads",
    "WholePage",
]
