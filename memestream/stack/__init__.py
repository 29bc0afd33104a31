"""The local stack of real services (Kafka, schema registry, PostgreSQL, Redis, MinIO, NATS, chDB).

Each service is a supervised background process bound to 127.0.0.1, with its data in
`<stack>/data/<service>` and its log in `<stack>/logs/<service>.log`; downloads and
builds are cached under `settings.cache_dir`. See `stack.Stack` for the whole set.
"""

from memestream.stack.process import ManagedProcess, Service, ServiceError, State, Status
from memestream.stack.stack import SERVICE_NAMES, Stack, StackError

__all__ = [
    "SERVICE_NAMES",
    "ManagedProcess",
    "Service",
    "ServiceError",
    "Stack",
    "StackError",
    "State",
    "Status",
]
