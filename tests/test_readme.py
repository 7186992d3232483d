"""The README's code does what it says: its programs run, its fragments compile, and the server walkthrough,
followed line by line with real processes, ends with the job complete.

Which Python blocks are programs: a block that calls `anyio.run(` or `asyncio.run(`, or has an
`if __name__ == "__main__":`, is a complete program; it must run as `python file.py` (in an empty directory,
on the installed `listener` and `plugins`) and exit 0. Every other block is a fragment (it uses names it does
not define, such as `api` or `handler`) and must compile, top-level `await` allowed.
"""

from __future__ import annotations

import ast
import csv
import io
import os
import re
import shlex
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest
from anyio.abc import Process

from examples import action_export
from listener import JobStatus
from listener.client import Client
from tests.test_processes import Lines, stopped

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BIN = Path(sys.executable).parent
"""The bin directory of the virtualenv the tests run in: the README's `.venv/bin/`."""

_FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>\w*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S)
_PROGRAM = re.compile(r"^(anyio\.run\(|asyncio\.run\(|if __name__ == [\"']__main__[\"']:)", re.M)


@dataclass(frozen=True)
class Block:
    """A fenced code block of the README: its language, the line its code starts on, and its code."""

    lang: str
    line: int
    code: str

    @property
    def is_program(self) -> bool:
        return bool(_PROGRAM.search(self.code))


def blocks(text: str) -> list[Block]:
    """The fenced code blocks of a Markdown text, in order; an indented block (in a list item) is dedented."""
    found = []
    for match in _FENCE.finditer(text):
        indent = match.group("indent")
        lines = match.group("body").splitlines(keepends=True)
        code = "".join(line.removeprefix(indent) for line in lines)
        found.append(Block(match.group("lang"), text.count("\n", 0, match.start("body")) + 1, code))
    return found


def section(text: str, heading: str) -> str:
    """The text of a `## heading` section, up to the next `## `."""
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else len(text)]


README_TEXT = README.read_text(encoding="utf-8")
PYTHON = [b for b in blocks(README_TEXT) if b.lang == "python"]
PROGRAMS = [pytest.param(b, id=f"README.md:{b.line}") for b in PYTHON if b.is_program]
FRAGMENTS = [pytest.param(b, id=f"README.md:{b.line}") for b in PYTHON if not b.is_program]


def _clean_env() -> dict[str, str]:
    """This process's environment less any LISTENER_* setting, so only what the README sets applies."""
    return {k: v for k, v in os.environ.items() if not k.startswith("LISTENER_")} | {"PYTHONUNBUFFERED": "1"}


def test_the_readme_has_programs_and_fragments_and_opens_with_a_program() -> None:
    assert PYTHON and PROGRAMS and FRAGMENTS
    first = PYTHON[0]
    assert first.is_program, "the README's first block runs as pasted into a file"
    assert "assert job.status == JobStatus.COMPLETE" in first.code, "it checks its own job completes"


@pytest.mark.parametrize("block", PROGRAMS)
def test_a_program_runs_as_pasted_into_a_file(block: Block, tmp_path: Path) -> None:
    program = tmp_path / "file.py"
    program.write_text(block.code, encoding="utf-8")
    # In an empty directory, as a reader runs it: `listener` and `plugins` come from the installed project.
    result = subprocess.run([sys.executable, program.name], cwd=tmp_path, env=_clean_env(), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, f"README.md:{block.line} exited {result.returncode}:\n{result.stderr}"


@pytest.mark.parametrize("block", FRAGMENTS)
def test_a_fragment_compiles(block: Block) -> None:
    compile(block.code, f"README.md:{block.line}", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


# -- the server walkthrough -------------------------------------------------------------------------------------

_ASSIGN = re.compile(r"(?P<name>[A-Za-z_]\w*)=(?:\$\((?P<command>[^)]*)\)|(?P<value>\S*))")
_READY = re.compile(r'"(?P<line>[^"]+?)(?: ?\.\.\.)?"')


def _walkthrough(port: int) -> list[tuple[str, str]]:
    """The lines of the "Running as a server" walkthrough as (command, comment), on `port` instead of 8080."""
    [first, *_] = [b for b in blocks(section(README_TEXT, "Running as a server")) if b.lang == "sh"]
    steps = []
    for line in first.code.replace("8080", str(port)).splitlines():
        command, _, comment = line.partition(" #")
        if command.strip():
            steps.append((command.strip(), comment.strip()))
    return steps


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Shell:
    """Runs the walkthrough's lines as sh would: `export A=b`, `A=$(command)`, `command &`, `command`, `$A`."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.env = _clean_env()
        self.variables: dict[str, str] = {}
        self.background: list[tuple[Process, Lines]] = []
        self.output = ""

    def _expand(self, text: str) -> list[str]:
        def value(match: re.Match[str]) -> str:
            name = match.group(1)
            assert name in self.variables or name in self.env, f"${name} is used before it is set"
            return self.variables.get(name, self.env.get(name, ""))

        return shlex.split(re.sub(r"\$([A-Za-z_]\w*)", value, text))

    async def _run(self, command: str) -> str:
        args = self._expand(command)
        with anyio.fail_after(120):
            result = await anyio.run_process(args, cwd=self.cwd, env=self.env, check=False)
        out, err = result.stdout.decode(), result.stderr.decode()
        assert result.returncode == 0, f"`{command}` exited {result.returncode}:\n{out}\n{err}"
        return out

    async def _assign(self, assignments: str, *, export: bool) -> None:
        for match in _ASSIGN.finditer(assignments):
            name = match.group("name")
            if match.group("command") is not None:
                value = (await self._run(match.group("command"))).strip()
            else:
                [value] = self._expand(match.group("value"))
            self.variables[name] = value
            if export:
                self.env[name] = value

    async def line(self, command: str, comment: str) -> None:
        """Run one line; after one ending in `&`, wait for the output line its comment names in quotes."""
        assert not re.search(r"[|;<>`]|&&", command), f"`{command}`: this test's shell knows no pipes or lists"
        if command.startswith("export "):
            await self._assign(command.removeprefix("export "), export=True)
        elif _ASSIGN.fullmatch(command):
            await self._assign(command, export=False)
        elif command.endswith("&"):
            ready = _READY.search(comment)
            assert ready, f"`{command}` runs in the background: its comment must name the line to wait for"
            process = await anyio.open_process(self._expand(command.removesuffix("&")), cwd=self.cwd, env=self.env,
                                               stderr=-2)
            out = Lines(process)
            self.background.append((process, out))
            await out.wait_for(re.escape(ready.group("line")), timeout=60)
        else:
            self.output = await self._run(command)

    async def stop(self) -> None:
        """Stop the background processes, the last started first, as a supervisor would (SIGTERM, exit 0)."""
        while self.background:
            process, out = self.background.pop()
            try:
                await stopped(process, out)
            finally:
                if process.returncode is None:
                    process.kill()
                await process.aclose()


@pytest.mark.anyio
async def test_the_server_walkthrough_followed_line_by_line_ends_with_the_job_complete(tmp_path: Path) -> None:
    assert (BIN / "listener").exists(), f"the `listener` command is not installed in {BIN}"
    # The README runs from the repository root; here from a fresh directory holding what it uses, so that
    # listener.db is new and the repository is left alone.
    (tmp_path / ".venv").symlink_to(BIN.parent)
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    steps = _walkthrough(_free_port())
    assert steps[-1][0].startswith(".venv/bin/listener jobs wait $"), "the walkthrough ends waiting for its job"

    shell = Shell(tmp_path)
    try:
        for command, comment in steps:
            await shell.line(command, comment)
        url, token, job_id = shell.env["LISTENER_URL"], shell.env["LISTENER_TOKEN"], shell.variables["JOB"]
        [(_, server_out), _] = shell.background
        assert "Created the admin user. Its token, shown only this once:" in server_out.seen, "as its comment says"
        assert re.search(rf"{job_id}\s.*workbook:export\s.*complete\s", shell.output), shell.output
        assert "Exported 3 records." in shell.output

        async with Client(url, token=token) as client:
            job = await client.jobs.get(job_id)
            assert job.status is JobStatus.COMPLETE and job.outcome is not None and job.outcome.next is not None
            assert job.outcome.next.type == "download"
            [output] = job.files
            assert job.outcome.next.url == f"/api/v1/files/{output.file_id}/content"
            data = await client.request("GET", f"/files/{output.file_id}/content", raw=True)
        assert list(csv.DictReader(io.StringIO(data.decode(), newline=""))) == action_export.CONTACTS
    finally:
        with anyio.CancelScope(shield=True):
            await shell.stop()
