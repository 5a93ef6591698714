"""Names the rest of the code imports: the rows, the interface (`Storage`) and `Store`, the
SQLite store (the name it had when it was the only one)."""

from softphone.server.storage import Storage
from softphone.server.store_rows import CallRow, Session, StoreUnavailable, SubscriptionRow, User
from softphone.server.store_sqlite import SqliteStore

Store = SqliteStore

__all__ = [
    "CallRow",
    "Session",
    "SqliteStore",
    "Storage",
    "Store",
    "StoreUnavailable",
    "SubscriptionRow",
    "User",
]
