"""Which code and which machine a benchmark figure records (benchmarks/provenance.py)."""

from __future__ import annotations

import datetime
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.provenance import (
    LIBRARIES,
    code_files,
    code_hash,
    code_hashes,
    describe_stale,
    environment,
    stale,
)
from benchmarks.servers import SERVERS, Server
from tests.support.processes import ROOT

PROTOCOL = Path("trio_echo/protocol/_protocol.py")
COMMON = Path("benchmarks/peers/_common.py")
PEERS = Path("benchmarks/peers")
HASH = re.compile(r"[0-9a-f]{16}")


def copy_repository(destination: Path) -> Path:
    """A copy of the code the servers run (trio_echo/ and benchmarks/) at ``destination``."""
    ignore = shutil.ignore_patterns(".cache", "__pycache__")
    for folder in ("trio_echo", "benchmarks"):
        shutil.copytree(ROOT / folder, destination / folder, ignore=ignore)
    return destination


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    return copy_repository(tmp_path / "checkout")


def server_of(program: str) -> Server:
    return Server(
        "made-up", "made up", "a test's program", lambda port, mode: [], program=(program,)
    )


def touch(path: Path) -> None:
    with path.open("a") as file:
        file.write("\n# changed\n")


def test_trio_echo_depends_on_its_whole_package():
    package = sorted(path.relative_to(ROOT) for path in (ROOT / "trio_echo").rglob("*.py"))
    assert code_files(SERVERS["trio-echo"]) == package


def test_a_peer_on_the_shared_protocol_depends_on_it_and_on_no_other_peer():
    files = code_files(SERVERS["asyncio-protocol"])
    assert PROTOCOL in files
    assert Path("trio_echo/protocol/_errors.py") in files  # reached by _protocol's relative import
    assert [path for path in files if path.parent == PEERS] == [
        COMMON,
        PEERS / "asyncio_protocol.py",
    ]
    assert files == sorted(files, key=Path.as_posix)


def test_a_peer_depends_only_on_the_modules_that_define_the_names_it_imports():
    files = code_files(SERVERS["asyncio-protocol"])
    assert Path("trio_echo/__init__.py") in files
    assert Path("trio_echo/client/_exchange.py") not in files
    assert Path("trio_echo/server/_listeners.py") not in files


def test_imports_among_peers_are_followed_transitively():
    files = code_files(SERVERS["forking"])  # forking.py imports threads, which imports _common
    assert {PEERS / "forking.py", PEERS / "threads.py", COMMON, PROTOCOL} <= set(files)
    assert PEERS / "threads_tutorial.py" not in files


def test_the_twisted_original_depends_on_its_own_file_only():
    assert code_files(SERVERS["twisted-original"]) == [PEERS / "twisted_original.py"]


def test_the_c_peer_depends_on_its_source():
    assert code_files(SERVERS["c-epoll"]) == [PEERS / "c_epoll.c"]


@pytest.mark.parametrize(
    "insert",
    [
        pytest.param("sys.path.insert(0, str(Path(__file__).resolve().parent.parent))", id="path"),
        pytest.param(
            "sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))",
            id="os.path",
        ),
    ],
)
def test_a_folder_put_on_sys_path_is_searched(checkout: Path, insert: str):
    tool = checkout / PEERS / "tools" / "tool.py"
    tool.parent.mkdir()
    tool.write_text(
        "import os\nimport sys\nfrom pathlib import Path\n\n"
        f"{insert}\n\nfrom _common import unread\n"
    )
    files = code_files(server_of("benchmarks/peers/tools/tool.py"), root=checkout)
    assert {PEERS / "tools" / "tool.py", COMMON, PROTOCOL} <= set(files)


def test_a_peer_imported_through_the_benchmarks_package_brings_its_init(checkout: Path):
    tool = checkout / "benchmarks" / "tool.py"
    tool.write_text(
        "from typing import TYPE_CHECKING\n\n"
        "from benchmarks.peers._common import unread\n\n"
        "if TYPE_CHECKING:\n    from benchmarks.peers.threads import Outbox\n"
    )
    files = code_files(server_of("benchmarks/tool.py"), root=checkout)
    assert {Path("benchmarks/__init__.py"), COMMON, PROTOCOL} <= set(files)
    assert PEERS / "threads.py" not in files  # imported for the type checker only


def test_a_missing_program_file_is_an_error(checkout: Path):
    with pytest.raises(FileNotFoundError, match=r"nowhere\.py"):
        code_files(server_of("benchmarks/peers/nowhere.py"), root=checkout)


def test_the_hash_follows_a_servers_files_and_no_others(checkout: Path):
    servers = list(SERVERS.values())
    before = code_hashes(servers, root=checkout)

    touch(checkout / PROTOCOL)
    after_protocol = code_hashes(servers, root=checkout)
    changed = {name for name in before if before[name] != after_protocol[name]}
    using_protocol = {s.name for s in servers if PROTOCOL in code_files(s, root=checkout)}
    assert changed == using_protocol
    assert {"trio-echo", "asyncio-protocol", "gevent", "threads"} <= changed
    assert "twisted-original" not in changed
    assert "c-epoll" not in changed

    touch(checkout / PEERS / "gevent_server.py")
    after_gevent = code_hashes(servers, root=checkout)
    changed = {name for name in before if after_protocol[name] != after_gevent[name]}
    assert changed == {"gevent"}


def test_the_hash_does_not_follow_a_file_outside_the_servers_code(checkout: Path):
    server = SERVERS["asyncio-protocol"]
    before = code_hash(server, root=checkout)
    touch(checkout / "trio_echo" / "client" / "_exchange.py")
    touch(checkout / "benchmarks" / "harness.py")
    assert code_hash(server, root=checkout) == before


def test_the_hash_is_stable_and_does_not_depend_on_where_the_checkout_is(tmp_path: Path):
    servers = list(SERVERS.values())
    here = code_hashes(servers)
    assert code_hashes(servers) == here
    assert all(HASH.fullmatch(value) for value in here.values())
    one = copy_repository(tmp_path / "one")
    other = copy_repository(tmp_path / "deeper" / "other")
    assert code_hashes(servers, root=one) == code_hashes(servers, root=other)


def test_the_hash_ignores_converted_line_endings(checkout: Path):
    server = SERVERS["twisted-original"]
    before = code_hash(server, root=checkout)
    path = checkout / PEERS / "twisted_original.py"
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    assert code_hash(server, root=checkout) == before


ENVIRONMENT_KEYS = {
    "commit",
    "dirty",
    "python",
    "libraries",
    "openssl",
    "compiler",
    "kernel",
    "machine",
    "cpu_model",
    "cpu_count",
    "cpus_available",
    "loadgen_hash",
    "recorded_at",
}


def test_the_environment_names_the_commit_and_the_machine():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    recorded = environment()
    assert set(recorded) == ENVIRONMENT_KEYS
    assert recorded["commit"] is not None
    assert re.fullmatch(r"[0-9a-f]{40}", recorded["commit"])
    assert isinstance(recorded["dirty"], bool)
    assert recorded["python"] == sys.version
    assert set(recorded["libraries"]) == set(LIBRARIES)
    assert recorded["libraries"]["trio"] is not None  # trio_echo needs it
    assert recorded["openssl"].startswith(("OpenSSL", "LibreSSL"))
    assert isinstance(recorded["cpu_count"], int)
    assert HASH.fullmatch(recorded["loadgen_hash"])
    when = datetime.datetime.fromisoformat(recorded["recorded_at"])
    assert when.utcoffset() == datetime.timedelta(0)


def git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        cwd=root,
        check=True,
        capture_output=True,
    )


def test_results_written_by_the_run_do_not_make_the_checkout_dirty(checkout: Path):
    if shutil.which("git") is None:
        pytest.skip("no git")
    (checkout / "benchmarks" / "results").mkdir(exist_ok=True)
    git(checkout, "init", "-q")
    git(checkout, "add", ".")
    git(checkout, "commit", "-q", "-m", "the code")
    assert environment(root=checkout)["dirty"] is False
    (checkout / "benchmarks" / "results" / "runs.jsonl").write_text("{}\n")
    (checkout / "benchmarks" / ".cache").mkdir(exist_ok=True)
    (checkout / "benchmarks" / ".cache" / "loadgen").write_text("built")
    assert environment(root=checkout)["dirty"] is False
    touch(checkout / PROTOCOL)
    assert environment(root=checkout)["dirty"] is True


def test_the_environment_without_git_or_a_compiler(checkout: Path, monkeypatch):
    monkeypatch.setenv("PATH", str(checkout / "no-programs"))
    monkeypatch.delenv("CC", raising=False)
    recorded = environment(root=checkout)
    assert set(recorded) == ENVIRONMENT_KEYS
    assert recorded["commit"] is None
    assert recorded["dirty"] is None
    assert recorded["compiler"] is None
    assert recorded["loadgen_hash"] == environment()["loadgen_hash"]


def test_stale_reports_a_server_whose_code_changed(checkout: Path):
    servers = list(SERVERS.values())
    recorded = code_hashes(servers, root=checkout)
    assert stale(recorded, servers, root=checkout) == {}
    touch(checkout / PEERS / "gevent_server.py")
    found = stale(recorded, servers, root=checkout)
    assert found == {"gevent": (recorded["gevent"], code_hash(SERVERS["gevent"], root=checkout))}
    message = describe_stale(found, servers, root=checkout)
    assert message.startswith("gevent: ")
    assert "benchmarks/peers/gevent_server.py" in message
    assert "trio_echo/protocol/_protocol.py" in message


def test_stale_passes_over_servers_no_longer_listed_or_never_recorded():
    servers = list(SERVERS.values())
    recorded = code_hashes(servers)
    recorded["retired-server"] = "0123456789abcdef"
    del recorded["trio-echo"]
    assert stale(recorded, servers) == {}
    recorded["gevent"] = "0123456789abcdef"
    assert stale(recorded, servers) == {
        "gevent": ("0123456789abcdef", code_hash(SERVERS["gevent"]))
    }
    assert describe_stale({}, servers) == ""
