"""One exception tree for hookstream: what must stop, what is permanent, what may be retried."""

from __future__ import annotations


class HookstreamError(Exception):
    """Base of every error hookstream raises on purpose."""


class MustStopError(HookstreamError):
    """The process cannot go on until an operator changes something."""


class ConfigurationError(MustStopError):
    """A setting or the environment is wrong; the message says which and how to fix it."""


class LocalBrokerError(MustStopError):
    """The local development broker could not be fetched, started or stopped."""


class BrokerAlreadyRunningError(LocalBrokerError):
    """A local broker already runs for this home directory."""


class PermanentError(HookstreamError):
    """This input will never succeed; it goes to the dead-letter topic, not back in line."""


class DecodeError(PermanentError):
    """A record's bytes are not a record of the expected Avro schema."""


class SchemaMismatchError(DecodeError):
    """A record was written with another schema than the reader expects."""
