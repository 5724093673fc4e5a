"""The environment `config exec` gives its program (issue 21): the program's own environment
without exec's settings, plus the app's values, minus the names a store value must not set.

Whoever can write an app's configuration must not get to run code of their choosing on every
host that runs `config exec` for it: names that pick the program's code or how it loads
(PATH, LD_PRELOAD, PYTHONPATH...) are skipped unless the operator lets one through by name
(`--allow-env`). Likewise exec's own credentials (REGISTRATOR_ETCD_PASSWORD...) stay with
exec unless `--pass-env` names one."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping

OWN_PREFIX = "REGISTRATOR_"  # exec's own settings and credentials
VALID_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# Names that choose which executable runs, what it loads, or what a shell or interpreter
# runs first. Compared upper-cased: the mapping upper-cases keys anyway.
DANGEROUS_NAMES = frozenset({
    "PATH", "HOME", "SHELL", "ENV", "BASH_ENV", "IFS", "CDPATH", "PS4", "PROMPT_COMMAND",
    "GCONV_PATH", "GLIBC_TUNABLES", "LOCPATH", "NLSPATH", "HOSTALIASES", "RESOLV_HOST_CONF",
    "TMPDIR", "PERL5LIB", "PERL5OPT", "PERLLIB", "RUBYLIB", "RUBYOPT", "NODE_OPTIONS",
    "NODE_PATH", "CLASSPATH", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS",
    "GIT_EXEC_PATH", "GIT_SSH", "GIT_SSH_COMMAND", "SSL_CERT_FILE", "SSL_CERT_DIR",
})
DANGEROUS_PREFIXES = ("LD_", "DYLD_", "PYTHON", "MALLOC_")


def program_base_env(environ: Mapping[str, str], pass_env: Collection[str]) -> dict[str, str]:
    """exec's environment without exec's own `REGISTRATOR_*` settings, except those named
    in `pass_env` (on purpose, one by one)."""
    return {name: value for name, value in environ.items()
            if not name.startswith(OWN_PREFIX) or name in pass_env}


def dangerous(name: str) -> bool:
    upper = name.upper()
    return upper in DANGEROUS_NAMES or upper.startswith(DANGEROUS_PREFIXES)


def skip_reason(name: str, allowed: Collection[str]) -> str | None:
    """Why the store may not set variable `name`, or None when it may."""
    if not VALID_NAME.fullmatch(name):
        return "is not a valid environment variable name"
    if dangerous(name) and name not in allowed:
        return "could change which program runs or what it loads (--allow-env NAME lets it)"
    return None
