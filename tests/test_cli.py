"""The `listener` command: options wired to the library, tables or JSON, one clear line on errors."""

from __future__ import annotations

import functools
import json
import os
import pty
import re
import socket
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from listener import Platform, __version__
from listener.cli import load_listener, main
from listener.platform.auth import AUTH_CACHE_SECONDS, Role, Users
from tests.conftest import ManualClock, Server
from tests.platform.test_server import call

LISTENER = [sys.executable, "-m", "listener.cli"]


async def cli(server: Server, *args: str, token: str | None = None) -> tuple[int, str, str]:
    result = await anyio.run_process([*LISTENER, *args, "--url", server.url, "--token", token or server.admin_token],
                                     check=False)
    return result.returncode, result.stdout.decode(), result.stderr.decode()


@pytest.mark.anyio
async def test_jobs_commands_over_the_api(server: Server) -> None:
    code, out, _ = await cli(server, "jobs", "create", "workbook:export", "--json")
    assert code == 0
    job = json.loads(out)
    assert (job["job"], job["status"], job["createdBy"]) == ("workbook:export", "ready", "admin")
    code, out, _ = await cli(server, "jobs", "create", "sheet:dedupe", "--manual", "--input", '{"column": "email"}')
    assert code == 0 and "sheet:dedupe" in out and "created" in out

    code, out, _ = await cli(server, "jobs", "create", "sheet:sync", "--dedupe-key", "s1", "--debounce", "60", "--json")
    debounced = json.loads(out)
    assert (code, debounced["dedupe"], debounced["status"]) == (0, "created", "scheduled")
    code, out, _ = await cli(server, "jobs", "create", "sheet:sync", "--dedupe-key", "s1", "--debounce", "60",
                             "--input", '{"v": 2}')
    assert code == 0 and f"Debounced: {debounced['id']}." in out
    code, _, err = await cli(server, "jobs", "create", "sheet:sync", "--debounce", "60")
    assert code != 0 and "debounceSeconds needs a dedupeKey" in err
    await server.platform.api.jobs.cancel(debounced["id"])
    await server.platform.api.jobs.delete(debounced["id"])

    code, out, _ = await cli(server, "jobs", "list")
    assert code == 0 and "workbook:export" in out and "2 of 2 job(s)" in out
    code, out, _ = await cli(server, "jobs", "list", "--status", "ready", "--json")
    listing = json.loads(out)
    assert listing["total"] == 1 and listing["items"][0]["id"] == job["id"]

    code, out, _ = await cli(server, "jobs", "get", job["id"], "--json")
    assert json.loads(out)["id"] == job["id"]
    await server.platform.api.jobs.ack(job["id"])
    await server.platform.api.jobs.complete(job["id"], outcome={"message": "Exported."})
    code, out, _ = await cli(server, "jobs", "wait", job["id"], "--timeout", "5")
    assert code == 0 and "complete" in out and "Exported." in out
    code, out, _ = await cli(server, "jobs", "ack-outcome", job["id"], "--json")
    assert code == 0 and json.loads(out)["outcomeAcknowledgedAt"] is not None
    code, out, _ = await cli(server, "jobs", "cancel", job["id"])
    assert code == 1


@pytest.mark.anyio
async def test_jobs_configure_and_list_parts(server: Server) -> None:
    code, out, _ = await cli(server, "jobs", "configure", "workbook:import", "--max-running", "1", "--timeout", "600")
    assert code == 0 and out.strip() == ("workbook:import: at most 1 running, any number of starts a second, "
                                         "timeout 600s.")
    code, _, err = await cli(server, "jobs", "configure", "workbook:import", "--max-running", "0")
    assert code == 1 and "max_running" in err
    code, _, err = await cli(server, "jobs", "configure", "workbook:import", "--max-running", "2",
                             token=await server.token("mo"))
    assert code == 1 and "admin" in err
    settings = await server.platform.api.jobs.settings()
    assert [(s.max_running, s.timeout_seconds) for s in settings] == [(1, 600)], "refused changes changed nothing"
    job = await server.platform.api.jobs.create(type="workbook", operation="import")
    await server.platform.api.jobs.ack(job.id)
    await server.platform.api.jobs.split(job.id, parts=2)
    code, out, _ = await cli(server, "jobs", "list", "--parent", job.id, "--json")
    assert [(p["part"], p["parentId"]) for p in json.loads(out)["items"]] == [(1, job.id), (2, job.id)]
    code, out, _ = await cli(server, "jobs", "list", "--top-level", "--json")
    assert [j["id"] for j in json.loads(out)["items"]] == [job.id]


@pytest.mark.anyio
async def test_jobs_list_takes_other_systems_status_words_and_types_of_their_own(server: Server) -> None:
    api = server.platform.api.as_actor("admin")
    done = await api.jobs.complete((await api.jobs.ack((await api.jobs.create(type="voters",
                                                                                operation="geocode")).id)).id)
    flaky = await api.jobs.ack((await api.jobs.create(type="workbook", operation="export",
                                                      retry={"max_attempts": 2, "base_seconds": 3600})).id)
    await api.jobs.fail(flaky.id, error="busy", retryable=True)
    slow = await api.jobs.fail((await api.jobs.ack((await api.jobs.create(type="import_voters",
                                                                          operation="run")).id)).id,
                               error="too long", kind="timeout")
    waiting = await api.jobs.create(type="voters", operation="geocode")

    async def listed(*args: str) -> list[str]:
        code, out, err = await cli(server, "jobs", "list", *args, "--json")
        assert code == 0, err
        return [j["id"] for j in json.loads(out)["items"]]

    assert await listed("--status", "SUCCESS") == await listed("--status", "completed") == [done.id]
    assert await listed("--status", "retry") == [flaky.id]
    assert await listed("--status", "TIMEOUT") == [slow.id]
    assert await listed("--status", "PENDING,RETRY") == await listed("--status", "pending", "--status", "RETRY") \
        == [waiting.id, flaky.id]
    assert await listed("--type", "voters") == [waiting.id, done.id]
    assert await listed("--type", "voters,import_voters", "--status", "FAILURE") == [slow.id]
    code, out, _ = await cli(server, "jobs", "get", flaky.id, "--json")
    assert (json.loads(out)["status"], json.loads(out)["fiddlerStatus"]) == ("scheduled", "RETRY")
    code, out, _ = await cli(server, "jobs", "create", "import_voters:csv", "--json")
    assert code == 0 and json.loads(out)["job"] == "import_voters:csv"
    code, _, err = await cli(server, "jobs", "list", "--status", "SUCCEEDED")
    assert code == 1 and "status" in err and "SUCCESS" in err and "pending" in err and "TIMEOUT" in err
    code, out, _ = await cli(server, "jobs", "list", "--help")
    assert "SUCCESS" in out and "TIMEOUT" in out


@pytest.mark.anyio
async def test_errors_are_one_clear_line(server: Server) -> None:
    code, _, err = await cli(server, "jobs", "get", "jb_missing")
    assert code == 1 and err.splitlines()[0] == "listener: Job jb_missing not found."
    code, _, err = await cli(server, "jobs", "list", token="lst_wrong-token-wrong-token")
    assert code == 1 and "token is not valid" in err
    code, _, err = await cli(server, "jobs", "list", "--status", "done")
    assert code == 1 and "status" in err


def test_users_create_prints_a_token_once(db_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["users", "create", "ann", "--role", "agent", "--db", str(db_path)]) == 0
    out = capsys.readouterr().out
    assert "Created agent ann" in out and "lst_" in out
    assert main(["users", "create", "ann", "--db", str(db_path)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main(["users", "create", "bad name", "--db", str(db_path)]) == 1
    assert "name" in capsys.readouterr().err


@pytest.mark.anyio
async def test_users_create_token_only_prints_a_token_a_script_can_use(db_path: Path) -> None:
    # As TOKEN=$(listener users create ... --token-only) captures it.
    result = await anyio.run_process([*LISTENER, "users", "create", "bot", "--role", "agent", "--token-only",
                                      "--db", str(db_path)])
    token = result.stdout.decode()
    assert token.startswith("lst_") and token.endswith("\n") and len(token.split()) == 1
    async with Platform.open(str(db_path), system_jobs=False) as platform:
        user = await Users(platform.store, platform.clock).authenticate(token.strip())
    assert (user.name, user.role) == ("bot", Role.AGENT)


@pytest.mark.anyio
async def test_users_list_revoke_and_rotate_on_the_database_a_server_shares(server: Server, db_url: str,
                                                                            clock: ManualClock) -> None:
    ann = await server.token("ann", "agent")
    db = ["--db", db_url]

    async def users(*args: str) -> tuple[int, str, str]:
        result = await anyio.run_process([*LISTENER, "users", *args, *db], check=False)
        return result.returncode, result.stdout.decode(), result.stderr.decode()

    code, out, _ = await users("list", "--json")
    assert code == 0
    listed = json.loads(out)["items"]
    assert [(u["name"], u["role"], u["revokedAt"]) for u in listed] == [("admin", "admin", None),
                                                                         ("ann", "agent", None)]
    assert "lst_" not in out and set(listed[0]) == {"id", "name", "role", "createdAt", "rotatedAt", "revokedAt"}
    code, out, _ = await users("list")
    assert code == 0 and "ann" in out and "agent" in out and "2 user(s)" in out

    assert (await call(server, "GET", "/api/v1/users/me", ann))[0] == 200  # the server has it cached
    code, out, _ = await users("revoke", "ann")
    assert code == 0 and "Revoked ann's token" in out
    clock.advance(AUTH_CACHE_SECONDS)  # the running server reads it again once its cached entry runs out
    assert (await call(server, "GET", "/api/v1/users/me", ann))[0] == 401
    code, out, _ = await users("list")
    assert "revoked" in out

    code, out, _ = await users("rotate", "ann", "--token-only")
    token = out.strip()
    assert code == 0 and token.startswith("lst_") and len(out.split()) == 1
    status, me = await call(server, "GET", "/api/v1/users/me", token)
    assert (status, me["name"], me["revokedAt"]) == (200, "ann", None)
    code, out, _ = await users("rotate", "ann")
    assert code == 0 and "shown only this once" in out and token not in out
    clock.advance(AUTH_CACHE_SECONDS)
    assert (await call(server, "GET", "/api/v1/users/me", token))[0] == 401, "rotate kills the old token"

    code, _, err = await users("revoke", "admin")
    assert code == 1 and "last admin" in err.splitlines()[0]
    code, _, err = await users("revoke", "nobody")
    assert code == 1 and err.splitlines()[0] == "listener: User 'nobody' not found."
    assert (await call(server, "GET", "/api/v1/users/me", server.admin_token))[0] == 200


def test_load_listener_by_path_and_name(tmp_path: Path) -> None:
    module = tmp_path / "my_listeners.py"
    module.write_text("from listener import Listener\nlistener = Listener('mine')\nother = Listener('other')\n")
    assert load_listener(str(module)).name == "mine"
    assert load_listener(f"{module}:other").name == "other"
    with pytest.raises(Exception, match="no Listener named 'nope'"):
        load_listener(f"{module}:nope")


def test_prune_deletes_old_finished_jobs(db_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async def seed() -> None:
        async with Platform.open(str(db_path)) as platform:
            job = await platform.api.jobs.create(type="workbook", operation="export")
            await platform.api.jobs.ack(job.id)
            await platform.api.jobs.complete(job.id)
            await platform.api.jobs.create(type="workbook", operation="export")

    anyio.run(seed)
    assert main(["prune", "--db", str(db_path), "--older-than", "1d"]) == 0
    assert "Deleted 0 finished job(s)" in capsys.readouterr().out
    assert main(["prune", "--db", str(db_path), "--older-than", "0s"]) == 0
    assert "Deleted 1 finished job(s)" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["prune", "--db", str(db_path), "--older-than", "soon"])


def test_version_prints_the_package_s_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0 and capsys.readouterr().out == f"listener {__version__}\n"


@pytest.mark.anyio
async def test_jobs_retry_runs_a_failed_job_again_and_refuses_one_that_did_not_fail(server: Server) -> None:
    api = server.platform.api
    job = await api.jobs.ack((await api.jobs.create(type="workbook", operation="export")).id)
    job = await api.jobs.fail(job.id, error="disk full")
    code, out, err = await cli(server, "jobs", "retry", job.id, "--json")
    assert code == 0, err
    retried = json.loads(out)
    assert (retried["id"], retried["status"]) == (job.id, "ready")
    code, out, _ = await cli(server, "jobs", "retry", job.id)
    assert code == 1 and out == ""
    code, _, err = await cli(server, "jobs", "retry", job.id)
    assert code == 1 and job.id in err.splitlines()[0] and "ready" in err.splitlines()[0]


@pytest.mark.anyio
async def test_jobs_retry_failed_items_makes_a_job_for_only_those(server: Server) -> None:
    api = server.platform.api
    job = await api.jobs.ack((await api.jobs.create(type="workbook", operation="import")).id)
    await api.jobs.log_error(job.id, item="row 3", message="no email")
    await api.jobs.fail(job.id, error="1 row failed")
    code, out, err = await cli(server, "jobs", "retry", job.id, "--failed-items", "--json")
    assert code == 0, err
    again = json.loads(out)[0] if out.lstrip().startswith("[") else json.loads(out)
    assert (again["retryOf"], again["input"], again["status"]) == (job.id, {"items": ["row 3"]}, "ready")
    code, _, err = await cli(server, "jobs", "retry", "--failed-items")
    assert code != 0 and "--failed-items takes the id" in err


@pytest.mark.anyio
async def test_jobs_wait_that_times_out_says_where_the_job_stood(server: Server) -> None:
    api = server.platform.api
    job = await api.jobs.ack((await api.jobs.create(type="workbook", operation="export")).id)
    await api.jobs.update(job.id, progress=67, info="Exporting")
    code, out, err = await cli(server, "jobs", "wait", job.id, "--timeout", "0.5")
    assert code == 1 and out == ""
    assert err == f"listener: Job {job.id} (workbook:export) still executing after 0.5s (67%, 'Exporting').\n"


def in_terminal(args: list[str], columns: int, *, status: int = 0) -> str:
    """What `args` prints to a terminal `columns` wide (a pseudo-terminal: rich draws for a person), exiting
    with `status`."""
    screen, terminal = pty.openpty()
    try:
        done = subprocess.run(args, stdout=terminal, stderr=subprocess.PIPE, timeout=30,
                              env={**os.environ, "COLUMNS": str(columns)})
        assert done.returncode == status, done.stderr
    finally:
        os.close(terminal)
    out = b""
    while True:
        try:
            chunk = os.read(screen, 65536)
        except OSError:  # EIO: the terminal's other side is closed and everything it wrote was read
            break
        if not chunk:
            break
        out += chunk
    os.close(screen)
    return out.decode()


@pytest.mark.anyio
async def test_ids_stay_whole_in_a_narrow_terminal(server: Server) -> None:
    api = server.platform.api
    jobs = [await api.jobs.create(type="workbook", operation="export", info="A long description " * 5)
            for _ in range(3)]
    await api.jobs.fail((await api.jobs.ack(jobs[0].id)).id, error="Disk full")
    command = [*LISTENER, "jobs", "list", "--url", server.url, "--token", server.admin_token]
    for columns in (50, 80, 120):
        out = await anyio.to_thread.run_sync(in_terminal, command, columns)
        lines = out.splitlines()
        assert max(map(len, re.sub(r"\x1b\[[0-9;]*m", "", out).splitlines())) <= columns, out
        for job in jobs:
            assert any(job.id in line for line in lines), out  # on one line, neither cut nor wrapped
        # The free text gives way first, the error last of it.
        assert ("Disk full" in out, "A long" in out) == (columns >= 80, columns >= 120), out
    out = await anyio.to_thread.run_sync(in_terminal, command, 200)
    assert "A long description" in out and "created by" in out


@pytest.mark.anyio
async def test_jobs_wait_in_a_terminal_draws_the_live_bar(server: Server) -> None:
    api = server.platform.api
    job = await api.jobs.ack((await api.jobs.create(type="workbook", operation="export")).id)
    await api.jobs.update(job.id, progress=67, info="Exporting")
    command = [*LISTENER, "jobs", "wait", job.id, "--timeout", "1", "--url", server.url, "--token", server.admin_token]
    out = await anyio.to_thread.run_sync(functools.partial(in_terminal, command, 120, status=1))
    assert f"{job.id} workbook:export" in out and "67%" in out and "Exporting" in out and "ETA" in out, out


@pytest.mark.anyio
async def test_a_port_in_use_is_one_line_naming_it(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        module = tmp_path / "empty.py"
        module.write_text("from listener import Listener\nlistener = Listener('empty')\n")
        for command in (["serve"], ["dev", str(module)]):
            result = await anyio.run_process([*LISTENER, *command, "--db", str(tmp_path / "x.db"), "--port",
                                              str(port)], check=False)
            err = [line for line in result.stderr.decode().splitlines() if line.startswith("listener: ")]
            assert result.returncode == 1 and "Traceback" not in result.stderr.decode(), result.stderr
            assert err == [f"listener: Port {port} on 127.0.0.1 is already in use: stop what listens there, "
                           "or choose another with --port (env LISTENER_PORT)."]


def test_prune_json_says_how_many_it_deleted(db_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prune", "--db", str(db_path), "--older-than", "1d", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"deleted": 0}


def answering(args: list[str], answer: str) -> tuple[int, str, str]:
    """Run `args` with a terminal for its input, on which `answer` is typed; its status, output and errors."""
    screen, terminal = pty.openpty()
    try:
        os.write(screen, answer.encode())
        done = subprocess.run(args, stdin=terminal, capture_output=True, timeout=30)
    finally:
        os.close(terminal)
        os.close(screen)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


@pytest.mark.anyio
async def test_jobs_cancel_and_retry_take_the_listings_filters_and_confirm_the_count(server: Server) -> None:
    api = server.platform.api
    batch = [await api.jobs.create(type="voters", operation="geocode", metadata={"batch": 1}) for _ in range(4)]
    done = await api.jobs.complete((await api.jobs.ack((await api.jobs.create(
        type="voters", operation="geocode", metadata={"batch": 1})).id)).id)
    other = await api.jobs.create(type="voters", operation="geocode", metadata={"batch": 2})

    code, out, err = await cli(server, "jobs", "cancel", "--type", "voters")  # no terminal to confirm on
    assert code == 1 and out == "" and "6 job(s) match" in err and "--yes" in err
    remote = [*LISTENER, "--url", server.url, "--token", server.admin_token]
    code, out, err = await anyio.to_thread.run_sync(answering, [*remote[:3], "jobs", "cancel", "--metadata",
                                                                "batch=2", *remote[3:]], "n\n")
    assert code == 0 and "1 job(s) match these filters. Cancel them? [y/N]" in err and "Nothing was moved." in err
    assert (await api.jobs.get(other.id)).status.value == "ready"
    code, out, err = await anyio.to_thread.run_sync(answering, [*remote[:3], "jobs", "cancel", "--metadata",
                                                                "batch=2", *remote[3:]], "y\n")
    assert code == 0 and "Cancelled 1 of 1 job(s)." in out, err
    assert (await api.jobs.get(other.id)).status.value == "cancelled"

    code, out, err = await cli(server, "jobs", "cancel", "--metadata", "batch=1", "--yes", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert (result["matched"], result["changed"], set(result["changedIds"])) == (5, 4, {j.id for j in batch})
    assert [(r["id"], r["code"]) for r in result["refused"]] == [(done.id, "conflict")]
    code, out, _ = await cli(server, "jobs", "retry", "--status", "failed", "--yes")
    assert code == 0 and out.strip() == "No jobs match these filters: nothing to retry."

    code, _, err = await cli(server, "jobs", "cancel")
    assert code == 1 and "job_id" in err
    code, _, err = await cli(server, "jobs", "cancel", done.id, "--status", "ready")
    assert code == 1 and "not both" in err
    member = await server.token("mia")
    code, out, _ = await cli(server, "jobs", "cancel", "--status", "ready", "--yes", token=member)
    assert code == 0 and "No jobs match" in out, "a member's filters match only their own jobs"
    mine = await api.as_actor("mia").jobs.create(type="voters", operation="geocode")
    code, _, err = await cli(server, "jobs", "cancel", "--status", "ready", "--yes", token=member)
    assert code == 1 and "admin" in err.splitlines()[0], err
    assert (await api.jobs.get(mine.id)).status.value == "ready"
