"""registrator: registers Docker containers' published ports in etcd v3."""

__version__ = "0.1.0"
