"""Configuration values (SPEC §9): per-app values with per-host overrides, optionally
encrypted in crypt's format, read by `config get/ls/exec` and by `render`."""
