"""One exception root; third-party exceptions are converted at the boundary modules
(docker_source, stores/*) so the rest of the code only ever sees these."""


class RegistratorError(Exception):
    """Root of every error registrator raises on purpose."""


class ConfigError(RegistratorError):
    """Bad flags or environment: the CLI turns it into exit code 2 and one line."""


class TransientError(RegistratorError):
    """Something outside us is down or slow; retrying later is the right answer."""


class DockerUnavailableError(TransientError):
    """The Docker engine could not be reached or answered with a server error."""


class StoreUnavailableError(TransientError):
    """The store could not be reached or timed out."""


class StoreFullError(StoreUnavailableError):
    """The store takes no more writes until an operator frees space (etcd's NOSPACE alarm);
    deletes still go through. Retried quickly: it ends the moment the alarm is disarmed."""


class LeaseLostError(TransientError):
    """The store no longer knows our lease (it expired while we were cut off)."""


class StoreError(RegistratorError):
    """The store refused a request for a reason retrying will not fix (e.g. permission)."""


class DockerAccessError(RegistratorError):
    """The Docker socket refuses this user; retrying soon will not change that."""


class TakenOverError(ConfigError):
    """Another daemon runs for this host name and prefix: two would undo each other's work."""


class InvalidKeyError(RegistratorError):
    """A key segment failed validation; nothing was written."""


class CompactedError(StoreError):
    """A watch asked for history the store has compacted away: read the current state again."""
