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
    "SSL_CERT_FILE", "SSL_CERT_DIR",
    # Shells' startup files and options; programs a program opens (editor, pager, less's
    # input filter, askpass helpers); Perl's debugger; PHP's, Ruby's and R's start files;
    # .NET's startup hooks; Erlang's flags; other TLS trust stores; where Java is.
    "ZDOTDIR", "SHELLOPTS", "BASHOPTS", "EDITOR", "VISUAL", "PAGER", "MANPAGER",
    "LESSOPEN", "LESSCLOSE", "SSH_ASKPASS", "SUDO_ASKPASS", "BROWSER", "PERL5DB",
    "PERL5SHELL", "PHPRC", "PHP_INI_SCAN_DIR", "GEM_HOME", "GEM_PATH", "BUNDLE_GEMFILE",
    "R_PROFILE", "R_PROFILE_USER", "R_ENVIRON", "R_ENVIRON_USER", "R_LIBS",
    "DOTNET_STARTUP_HOOKS", "DOTNET_ADDITIONAL_DEPS", "ERL_AFLAGS", "ERL_ZFLAGS",
    "ERL_FLAGS", "ERL_LIBS", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS",
    "JAVA_HOME", "TCLLIBPATH", "GUILE_LOAD_PATH", "KRB5_CONFIG",
})
# GIT_ (GIT_CONFIG_*, GIT_SSH_COMMAND, GIT_ASKPASS...), OPENSSL_ (OPENSSL_CONF loads engines),
# LUA_ (LUA_INIT runs code), CORECLR_/COR_ (.NET profilers).
DANGEROUS_PREFIXES = ("LD_", "DYLD_", "PYTHON", "MALLOC_", "GIT_", "OPENSSL_", "LUA_",
                      "CORECLR_", "COR_")


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
