"""Protocol v1: the wire models shared by the client and the server. No I/O here."""

from softphone.protocol.errors import CloseCode, ErrorCode

PROTOCOL_VERSION = 1

__all__ = ["PROTOCOL_VERSION", "CloseCode", "ErrorCode"]
