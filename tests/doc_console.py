"""Run the console and Python blocks of a documentation page as a reader would.

A page that tells a newcomer what to type drifts from the product unless
something types it. This module reads the ``.. code-block::`` directives of
an ``.rst`` page, in order, and runs them in a scratch directory:

* A ``console`` block is a list of ``$ command`` lines, each followed by the
  output the page promises. A command runs in ``bash`` in the current
  directory (``cd`` changes it); a here-document (``<<'EOF'``) takes its
  lines up to ``EOF``. A command that only sources a script
  (``. venv/bin/activate``) changes the environment of the commands after
  it, as in the reader's shell. The promised lines must appear in the real
  output (standard output and error together), in order; other lines may come
  between them, ``...`` in a line matches anything, and a line that is only
  ``...`` is a reminder that something was left out. A command must exit 0,
  unless its promised output shows curl's error line (``curl: (N) ...``).
* ``manage.py ftpserver`` runs in the background, as in another terminal.
  Its promised lines must all have appeared by the time the next server
  starts or the page ends; then it is stopped with SIGINT (CONTROL-C).
* A ``python`` block whose first line is a comment naming a file
  (``# myapp/receivers.py``) is that file's content. Any other ``python``
  block is a script, run with ``python``; ``which prints ``X```` right
  after it promises its output.

Fixed FTP ports on the page are replaced by a free one, so that the page
can show ``2121`` and the test never collides with anything. A free port
number is only free when it was picked: with ``server_ports``, each server
start picks its own (the commands that follow use it), and a server that
found its port taken meanwhile is started again on another one.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

DIRECTIVE = re.compile(r"^\.\. code-block:: (\w+)\s*$")
FILE_HEADER = re.compile(r"^# ([\w./-]+\.\w+)$")
PRINTS = re.compile(r"^which prints ``(.+?)``")
CURL_ERROR = re.compile(r"^curl: \(\d+\) ")
# A command that only sources a script, and the variables bash keeps for itself.
SOURCE = re.compile(r"(?:\.|source) \S+")
BASH_OWN = frozenset({"PWD", "OLDPWD", "SHLVL", "_"})
# What ``manage.py ftpserver`` says when its port is taken (``describe_bind_error``).
ADDRESS_IN_USE = re.compile(r"cannot listen on \S+: .*\(another process listens there\)")


@dataclass
class Block:
    language: str
    lines: list[str]
    after: str  # the paragraph right after the block


@dataclass
class Command:
    text: str
    expected: list[str]


class CommandFailed(AssertionError):
    """A command exited non-zero, timed out or did not print what the page promises."""

    def __init__(self, message: str, command: str, output: str, timed_out: bool = False) -> None:
        super().__init__(message)
        self.command = command
        self.output = output
        self.timed_out = timed_out


def blocks(text: str, stop_at: str | None = None) -> list[Block]:
    """The code blocks of ``text`` in order, up to the heading ``stop_at``."""
    lines = text.splitlines()
    if stop_at is not None:
        lines = lines[: lines.index(stop_at)]
    found: list[Block] = []
    i = 0
    while i < len(lines):
        match = DIRECTIVE.match(lines[i])
        i += 1
        if not match:
            continue
        body: list[str] = []
        while i < len(lines) and (not lines[i].strip() or lines[i].startswith("   ")):
            body.append(lines[i])
            i += 1
        after = []
        while i < len(lines) and not after and lines[i].strip() == "":
            i += 1
        while i < len(lines) and lines[i].strip():
            after.append(lines[i])
            i += 1
        found.append(
            Block(
                match.group(1),
                textwrap.dedent("\n".join(body)).strip("\n").split("\n"),
                " ".join(after),
            )
        )
    return found


def commands(block: Block) -> list[Command]:
    """The ``$`` commands of a console block with the output promised after each."""
    result: list[Command] = []
    lines = iter(block.lines)
    for line in lines:
        if line.startswith("$ "):
            text = line[2:]
            if "<<'EOF'" in text:
                body = []
                for more in lines:
                    body.append(more)
                    if more == "EOF":
                        break
                text = "\n".join([text, *body])
            result.append(Command(text, []))
        elif result and line.strip():
            result[-1].expected.append(line.rstrip())
        elif not result and line.strip():
            raise AssertionError(f"output before any command: {line!r}")
    return result


def _pattern(line: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in line.strip().split("...")))


def missing_lines(expected: list[str], output: str) -> list[str]:
    """The promised lines not found, in order, in ``output`` (empty: all there)."""
    wanted = [line for line in expected if line.strip() != "..."]
    actual = [line.rstrip() for line in output.splitlines()]
    position = 0
    for index, line in enumerate(wanted):
        pattern = _pattern(line)
        while position < len(actual) and not pattern.fullmatch(actual[position].strip()):
            position += 1
        if position == len(actual):
            return wanted[index:]
        position += 1
    return []


@dataclass
class Server:
    process: subprocess.Popen
    log: Path
    expected: list[str]

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, lines: list[str], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while missing := missing_lines(lines, self.output()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"{what}: the server did not print {missing[0]!r}; it printed:\n{self.output()}"
                )
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # CONTROL-C
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
                raise AssertionError("the server did not stop on CONTROL-C") from None


@dataclass
class Reader:
    """Types a page's blocks into ``bash`` and ``python`` in ``cwd``."""

    cwd: Path
    env: dict[str, str]
    port_map: dict[str, str]
    skipped: list[str] = field(default_factory=list)
    ran: list[str] = field(default_factory=list)
    servers: list[Server] = field(default_factory=list)
    skip: tuple[re.Pattern[str], ...] = ()
    timeout: float = 120
    #: Called at each server start for a fresh ``port_map`` (None: keep one map).
    server_ports: Callable[[], dict[str, str]] | None = None
    #: Starts of one server on fresh ports before its port's being taken fails.
    port_attempts: int = 5
    #: A command prefix that runs each command as another user (``setpriv ...``).
    as_user: list[str] = field(default_factory=list)

    def substitute(self, text: str) -> str:
        for shown, real in self.port_map.items():
            text = text.replace(shown, real)
        return text

    def run_page(self, page_blocks: list[Block]) -> None:
        try:
            for block in page_blocks:
                if block.language == "console":
                    for command in commands(block):
                        self.run_command(command)
                elif block.language == "python":
                    self.run_python(block)
            self.finish_server()
        finally:
            for server in self.servers:
                if server.process.poll() is None:
                    server.process.kill()
                    server.process.wait(10)

    def run_command(self, command: Command) -> None:
        if any(pattern.search(command.text) for pattern in self.skip):
            self.skipped.append(command.text)
            return
        self.ran.append(command.text)
        if "manage.py ftpserver" in command.text:
            self.start_server(command)
            return
        text = self.substitute(command.text)
        expected = [self.substitute(line) for line in command.expected]
        if re.fullmatch(r"cd (\S+)", text):
            self.cwd = (self.cwd / text.split()[1]).resolve()
            assert self.cwd.is_dir(), f"{command.text}: no such directory"
            return
        sourced = SOURCE.fullmatch(text)
        try:
            result = self.run(["bash", "-c", f"{text} && env -0" if sourced else text])
        except subprocess.TimeoutExpired as exc:
            output = "".join(
                part.decode(errors="replace") if isinstance(part, bytes) else part or ""
                for part in (exc.stdout, exc.stderr)
            )
            raise CommandFailed(
                f"$ {command.text}\ntimed out after {self.timeout}s:\n{output}",
                command.text,
                output,
                timed_out=True,
            ) from None
        output = result.stdout + result.stderr
        allowed_to_fail = any(CURL_ERROR.match(line) for line in expected)
        if result.returncode and not allowed_to_fail:
            raise CommandFailed(
                f"$ {command.text}\nexited {result.returncode}:\n{output}", command.text, output
            )
        if sourced:
            # The script's variables, for the commands after it (bash's own left out).
            pairs = (item.partition("=") for item in result.stdout.split("\0") if item)
            self.env = {key: value for key, _, value in pairs if key not in BASH_OWN}
            return
        missing = missing_lines(expected, output)
        if missing:
            raise CommandFailed(
                f"$ {command.text}\ndid not print {missing[0]!r}; it printed:\n{output}",
                command.text,
                output,
            )

    def run(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` to its end as the reader would, in the current directory."""
        return subprocess.run(
            [*self.as_user, *argv],
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=self.timeout,
        )

    def start_server(self, command: Command) -> None:
        """Start ``command``'s server in the background, on fresh ports if asked."""
        self.finish_server()
        for attempt in range(1, self.port_attempts + 1):
            if self.server_ports is not None:
                self.port_map = self.server_ports()
            text = self.substitute(command.text)
            expected = [self.substitute(line) for line in command.expected]
            server = self._start_server(text, expected)
            try:
                server.wait_for(["Serving ..."], self.timeout, f"$ {text}")
            except AssertionError:
                # Another process took the free port between its pick and
                # the bind: that is the machine, not the page; pick again.
                taken = server.process.poll() is not None and ADDRESS_IN_USE.search(server.output())
                if taken and self.server_ports is not None and attempt < self.port_attempts:
                    self.servers.remove(server)
                    continue
                raise
            break
        # SIGINT stops it cleanly only once the runner has installed its handler.
        server.wait_for(["Quit the server with ..."], self.timeout, f"$ {text}")

    def _start_server(self, text: str, expected: list[str]) -> Server:
        log = self.cwd / f".server-{len(self.servers)}.log"
        with log.open("w") as out:
            process = subprocess.Popen(
                [*self.as_user, "bash", "-c", f"exec {text}"],
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        server = Server(process, log, expected)
        self.servers.append(server)
        return server

    def finish_server(self) -> None:
        """Check the running server printed all it promised, then stop it."""
        if self.servers and self.servers[-1].process.poll() is None:
            server = self.servers[-1]
            server.wait_for(server.expected, 60, "the page's server")
            server.stop()

    def run_python(self, block: Block) -> None:
        header = FILE_HEADER.match(block.lines[0])
        if header:
            path = self.cwd / header.group(1)
            assert path.parent.is_dir(), f"{header.group(1)}: no such directory"
            path.write_text("\n".join(block.lines) + "\n")
            self.ran.append(f"write {header.group(1)}")
            return
        code = self.substitute("\n".join(block.lines))
        result = self.run(["python", "-c", code])
        self.ran.append("python block")
        assert result.returncode == 0, f"{code}\nexited {result.returncode}:\n{result.stderr}"
        promised = PRINTS.match(block.after)
        if promised:
            assert promised.group(1) in result.stdout, (code, result.stdout)


def reader_env(bin_dir: str) -> dict[str, str]:
    """The environment of a reader whose virtualenv's ``bin`` is ``bin_dir``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "FTPSERVER_", "PYTEST_"))
    }
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(Path(bin_dir).parent)
    env["PYTHONUNBUFFERED"] = "1"  # the reader sees the server's lines as they come
    return env


def iter_commands(page_blocks: list[Block]) -> Iterator[str]:
    for block in page_blocks:
        if block.language == "console":
            for command in commands(block):
                yield command.text
