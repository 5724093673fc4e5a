"""The documentation's runnable shell blocks: found by their marker, run as written.

A block meant to run has an HTML comment right above its fence (invisible on GitHub and in
MkDocs):

    <!-- doc-test: SCENARIO [retry=SECONDS] [expect=TEXT] [cleanup] -->
    ```sh
    ...
    ```

Blocks of one SCENARIO in one file run in order, each in its own `bash -euo pipefail`, from
the repository root. `retry=30`: run again until it succeeds (and prints `expect`) or 30 s
pass, for a command that shows a state the system reaches shortly (`registrator ls` right
after `docker run`). `expect=TEXT`: its output must contain TEXT. `cleanup`: runs after the
others even when one failed (removing what the scenario started). `tmpdir`: runs in an empty
temporary directory instead (for blocks that write files where they run).

What differs from a reader's machine, and only that, is substituted (SUBSTITUTIONS below):
the image this checkout's tests built instead of `registrator:latest`, the local images
instead of upstream ones (no registry here), free ports instead of 2379 (etcd) and 8080
(the HAProxy example), and
`docker-compose` where the compose plugin is missing. The compose files read the same
settings from the environment (`docblock_env`)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

MARKER = re.compile(
    r"^<!-- doc-test: (?P<attrs>.*?) -->\n```(?:sh|bash)\n(?P<body>.*?)^```",
    re.MULTILINE | re.DOTALL)
# Names the scenarios' containers get with --name: checked free before a scenario runs.
NAME = re.compile(r"--name[ =]([A-Za-z0-9][A-Za-z0-9_.-]*)")


@dataclass(frozen=True)
class Block:
    file: Path
    scenario: str
    body: str
    line: int
    retry: float = 0.0
    expect: str | None = None
    cleanup: bool = False
    tmpdir: bool = False


def blocks(file: Path) -> list[Block]:
    text = file.read_text()
    out = []
    for match in MARKER.finditer(text):
        words = shlex.split(match.group("attrs"))
        attrs = dict(w.split("=", 1) for w in words[1:] if "=" in w)
        line = text.count("\n", 0, match.start()) + 1
        out.append(Block(file, words[0], match.group("body"), line,
                         retry=float(attrs.get("retry", 0)), expect=attrs.get("expect"),
                         cleanup="cleanup" in words[1:], tmpdir="tmpdir" in words[1:]))
    return out


def scenarios(files: list[Path]) -> dict[str, list[Block]]:
    """`file:scenario` -> its blocks, in order."""
    out: dict[str, list[Block]] = {}
    for file in files:
        for block in blocks(file):
            out.setdefault(f"{file.name}:{block.scenario}", []).append(block)
    return out


def has_compose_plugin() -> bool:
    return subprocess.run(["docker", "compose", "version"], capture_output=True,
                          check=False).returncode == 0


def substitutions(image: str, etcd_port: int, lb_port: int,
                  local: dict[str, str]) -> list[tuple[str, str]]:
    subs = [("registrator:latest", image), ("127.0.0.1:2379", f"127.0.0.1:{etcd_port}"),
            ("127.0.0.1:8080", f"127.0.0.1:{lb_port}")]
    subs += list(local.items())
    if not has_compose_plugin() and shutil.which("docker-compose"):
        subs.append(("docker compose ", "docker-compose "))
    return subs


def substituted(body: str, subs: list[tuple[str, str]]) -> str:
    for old, new in subs:
        body = body.replace(old, new)
    return body


def container_names(blocks_: list[Block]) -> set[str]:
    return {name for b in blocks_ for name in NAME.findall(b.body)}


class BlockFailedError(AssertionError):
    pass


def run_block(block: Block, script: str, env: dict[str, str], cwd: Path) -> str:
    """Its output; BlockFailedError naming the file, line and what it printed."""
    deadline = time.monotonic() + block.retry
    while True:
        with tempfile.TemporaryDirectory() as tmp:
            proc = subprocess.run(["bash", "-euo", "pipefail", "-c", script],
                                  cwd=tmp if block.tmpdir else cwd, env=env,
                                  capture_output=True, text=True, timeout=300, check=False)
        ok = proc.returncode == 0 and (block.expect is None or block.expect in proc.stdout)
        if ok:
            return proc.stdout
        if time.monotonic() >= deadline:
            want = f" and print {block.expect!r}" if block.expect else ""
            raise BlockFailedError(
                f"{block.file.name} line {block.line}: the block did not succeed{want} "
                f"(exit {proc.returncode})\n--- block as run:\n{script}\n--- stdout:\n"
                f"{proc.stdout[-3000:]}\n--- stderr:\n{proc.stderr[-3000:]}")
        time.sleep(0.5)
