"""The one way the read-only commands (`ls`, `watch`, `render`, `serve`, `config get/ls/exec`)
open a store: a store opened here creates nothing. Only `run` and `config set/rm/grant`
write, so only they may make a ZooKeeper chroot; a reader given a chroot that does not exist
has the wrong connect string, and says so instead of reading an empty registry forever."""

from __future__ import annotations

from registrator.errors import StoreUnavailableError
from registrator.settings import EtcdSettings, ZooKeeperSettings
from registrator.stores.base import Store


def open_read_only(settings: EtcdSettings | ZooKeeperSettings) -> Store:
    """The store `settings` name, connected when it answers now. StoreError("no such
    chroot") at once when ZooKeeper answers without the chroot; an unreachable store is the
    caller's to retry (watch, render) or report (ls), as before."""
    if isinstance(settings, EtcdSettings):
        from registrator.stores.etcd import EtcdStore  # noqa: PLC0415 - one store's client

        return EtcdStore(settings)
    from registrator.stores.zookeeper import ZooKeeperStore  # noqa: PLC0415 - likewise

    store = ZooKeeperStore(settings, create_chroot=False)
    try:
        store.connect()
    except StoreUnavailableError:
        pass  # not now: the chroot is checked again at every connect
    except BaseException:
        store.close()
        raise
    return store
