"""SHA-256 digests: both twins (and both C block functions) held against hashlib, plus the selector.

Every test that takes ``impl`` runs against the C twin with SHA-NI, the C twin with portable C,
and the hashlib twin. Behaviour that needs a clean interpreter (the selector's env var, signals,
a blocked FIFO that would deadlock a GIL-holding implementation, a non-root user) runs in a
subprocess with a timeout.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maelstrom_core import digest
from maelstrom_core.errors import ArtifactError

CHUNK = 256 * 1024  # the read buffer of both twins

IMPLS = [
    pytest.param("c-sha-ni", marks=pytest.mark.c_extension, id="c-sha-ni"),
    pytest.param("c-portable", marks=pytest.mark.c_extension, id="c-portable"),
    pytest.param("py", id="py"),
]


@pytest.fixture(scope="module", params=IMPLS)
def impl(request: pytest.FixtureRequest) -> Iterator[ModuleType]:
    if request.param == "py":
        yield importlib.import_module("maelstrom_core._digest_py")
        return
    module = importlib.import_module("maelstrom_core._digest_c")
    backend = request.param.removeprefix("c-")
    if backend not in module._available_backends():
        pytest.skip(f"this CPU cannot run the {backend} block function")
    previous = module._set_backend(backend)
    assert module._backend() == backend
    try:
        yield module
    finally:
        module._set_backend(previous)


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def run_python(
    code: str, *args: str, timeout: float = 60, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter; a hang (say, a deadlock on the GIL) is a failure."""
    env = kwargs.pop("env", None) or {
        k: v for k, v in os.environ.items() if k != "MAELSTROM_NO_EXTENSIONS"
    }
    try:
        child: subprocess.CompletedProcess[str] = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
            env=env,
            **kwargs,  # type: ignore[call-overload]
        )
        return child
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"child hung (is the GIL held while blocked?): {error.stderr!r}")
    except subprocess.CalledProcessError as error:
        pytest.fail(f"child failed with {error.returncode}: {error.stderr}")


# ---------------------------------------------------------------- hashing bytes ------------


@pytest.mark.parametrize(
    ("data", "hexdigest"),
    [
        (b"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        (b"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        (
            b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
        ),
        (b"a" * 1_000_000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"),
    ],
    ids=["empty", "abc", "448-bit", "million-a"],
)
def test_fips_180_vectors(impl: ModuleType, data: bytes, hexdigest: str) -> None:
    assert impl.sha256_bytes(data).hex() == hexdigest
    hasher = impl.Sha256()
    hasher.update(data)
    assert hasher.hexdigest() == hexdigest


@settings(deadline=None)
@given(unit=st.binary(max_size=300), repeat=st.integers(1, 300))
def test_sha256_bytes_matches_hashlib(impl: ModuleType, unit: bytes, repeat: int) -> None:
    # Repeating a drawn unit reaches sizes past the no-GIL threshold (8 KiB) cheaply.
    data = unit * repeat
    expected = sha(data)
    assert impl.sha256_bytes(data) == expected
    assert impl.sha256_bytes(bytearray(data)) == expected
    assert impl.sha256_bytes(memoryview(data)) == expected


@settings(deadline=None)
@given(unit=st.binary(max_size=200), repeat=st.integers(1, 200), choices=st.data())
def test_any_chunking_of_update_matches_hashlib(
    impl: ModuleType, unit: bytes, repeat: int, choices: st.DataObject
) -> None:
    data = unit * repeat
    cuts = sorted(choices.draw(st.lists(st.integers(0, len(data)), max_size=20)))
    hasher = impl.Sha256()
    start = 0
    for cut in [*cuts, len(data)]:
        hasher.update(memoryview(data)[start:cut])
        # digest() is a peek, not an end: the stream goes on afterwards.
        assert hasher.digest() == sha(data[:cut])
        start = cut
    assert hasher.digest() == sha(data)
    assert hasher.hexdigest() == hashlib.sha256(data).hexdigest()


def test_update_takes_any_contiguous_buffer(impl: ModuleType) -> None:
    numbers = memoryview(bytes(range(256)) * 64).cast("I")  # items wider than a byte
    hasher = impl.Sha256()
    hasher.update(numbers)
    hasher.update(bytearray(b"tail"))
    assert hasher.digest() == sha(numbers.tobytes() + b"tail")


def test_rejects_what_hashlib_rejects(impl: ModuleType) -> None:
    with pytest.raises(TypeError):
        impl.sha256_bytes("text")
    with pytest.raises(TypeError):
        impl.sha256_bytes(None)
    with pytest.raises(TypeError):
        impl.Sha256().update("text")
    with pytest.raises(TypeError):
        impl.Sha256().update(None)
    with pytest.raises(BufferError):
        impl.sha256_bytes(memoryview(bytes(64))[::2])


def test_one_hasher_shared_by_threads(impl: ModuleType) -> None:
    # Identical chunks make the result independent of the order the threads win the lock in;
    # an unserialised update (two threads in one state at once) would corrupt it. The odd
    # size keeps a partial block pending between updates.
    chunk = os.urandom(CHUNK + 13)
    hasher = impl.Sha256()

    def feed() -> None:
        for _ in range(32):
            hasher.update(chunk)

    threads = [threading.Thread(target=feed) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert hasher.digest() == sha(chunk * 128)


# ---------------------------------------------------------------- the GIL ------------------


def _hash_with_sha256_bytes(impl: ModuleType, data: bytearray) -> bytes:
    result: bytes = impl.sha256_bytes(data)
    return result


def _hash_with_update(impl: ModuleType, data: bytearray) -> bytes:
    hasher = impl.Sha256()
    hasher.update(data)
    result: bytes = hasher.digest()
    return result


def _write_while_hashing(
    impl: ModuleType, hash_call: Callable[[ModuleType, bytearray], bytes], data: bytearray
) -> tuple[bool, bytes]:
    """Hash ``data`` in a worker thread; as soon as this thread runs again, change its last byte.

    Returns whether the worker was still inside the hash call at that moment, and its digest.
    """
    results: list[bytes] = []
    started = threading.Event()

    def work() -> None:
        started.set()
        results.append(hash_call(impl, data))

    worker = threading.Thread(target=work)
    worker.start()
    started.wait()
    in_progress = not results
    data[-1] = 1
    worker.join()
    return in_progress, results[0]


@pytest.mark.parametrize("hash_call", [_hash_with_sha256_bytes, _hash_with_update])
def test_another_thread_runs_while_a_large_buffer_is_hashed(
    impl: ModuleType, hash_call: Callable[[ModuleType, bytearray], bytes]
) -> None:
    # With a huge switch interval a thread only gives up the GIL when it blocks or releases it
    # itself. So once the worker has started, this thread can run again only when the worker
    # dropped the GIL inside the hash call (or has finished). Its write to the buffer's last
    # byte then lands while the hash is in progress, and the digest must include it; had the
    # GIL been held, the write would come after the call returned and the digest would not.
    size = 64 << 20
    changed = sha(bytes(size - 1) + b"\x01")
    previous_interval = sys.getswitchinterval()
    sys.setswitchinterval(60.0)
    try:
        outcomes = []
        for _ in range(5):  # a retry only covers this thread being descheduled for too long
            in_progress, result = _write_while_hashing(impl, hash_call, bytearray(size))
            outcomes.append((in_progress, result == changed))
            if outcomes[-1] == (True, True):
                return
    finally:
        sys.setswitchinterval(previous_interval)
    pytest.fail(f"never ran while the hash was in progress: (in progress, saw write) {outcomes}")


def test_file_reads_release_the_gil(impl: ModuleType, tmp_path: Path) -> None:
    # The main thread feeds a FIFO that a worker thread is hashing. A twin that held the GIL
    # while blocked in open() or read() would deadlock the child, and the timeout fails us.
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    child = run_python(
        """
        import hashlib, importlib, os, sys, threading
        impl = importlib.import_module(sys.argv[1])
        if hasattr(impl, "_set_backend"):
            impl._set_backend(sys.argv[3])
        data = os.urandom(3 << 20)
        results = []
        worker = threading.Thread(target=lambda: results.append(impl.sha256_file(sys.argv[2])))
        worker.start()
        fd = os.open(sys.argv[2], os.O_WRONLY)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view[:65536]):]
        os.close(fd)
        worker.join()
        print(results[0] == hashlib.sha256(data).digest())
        """,
        impl.__name__,
        str(fifo),
        getattr(impl, "_backend", lambda: "")(),
        timeout=30,
    )
    assert child.stdout.strip() == "True"


# ---------------------------------------------------------------- files --------------------

SIZES = [0, 1, 55, 56, 63, 64, 65, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 7, (5 << 20) + 3]


@pytest.fixture(scope="module")
def sized_files(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, bytes]]:
    folder = tmp_path_factory.mktemp("sized")
    files = []
    for size in SIZES:
        data = os.urandom(size)
        path = folder / f"{size}.bin"
        path.write_bytes(data)
        files.append((path, data))
    return files


@pytest.mark.parametrize("index", range(len(SIZES)), ids=[str(size) for size in SIZES])
def test_sha256_file_matches_hashlib(
    impl: ModuleType, sized_files: list[tuple[Path, bytes]], index: int
) -> None:
    path, data = sized_files[index]
    assert impl.sha256_file(path) == sha(data)
    assert impl.sha256_file(str(path)) == sha(data)


def test_sha256_files_equals_one_file_at_a_time(
    impl: ModuleType, sized_files: list[tuple[Path, bytes]]
) -> None:
    paths = [path for path, _ in sized_files]
    paths = [*paths, *reversed(paths), paths[3]]  # order kept, repeats hashed again
    digests = impl.sha256_files(paths)
    assert digests == [impl.sha256_file(path) for path in paths]
    assert digests == [sha(path.read_bytes()) for path in paths]
    assert impl.sha256_files(tuple(str(path) for path in paths)) == digests


def test_sha256_files_of_nothing(impl: ModuleType) -> None:
    assert impl.sha256_files([]) == []


def test_sha256_file_follows_symlinks(impl: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "target").write_bytes(b"pointed at")
    (tmp_path / "link").symlink_to("target")
    assert impl.sha256_file(tmp_path / "link") == sha(b"pointed at")


def test_many_small_files(impl: ModuleType, tmp_path: Path) -> None:
    contents = [os.urandom(n % 300) for n in range(500)]
    paths = []
    for number, data in enumerate(contents):
        path = tmp_path / f"f{number}"
        path.write_bytes(data)
        paths.append(path)
    assert impl.sha256_files(paths) == [sha(data) for data in contents]


# ---------------------------------------------------------------- unreadable files ---------


def test_missing_file(impl: ModuleType, tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ArtifactError) as caught:
        impl.sha256_file(missing)
    assert str(caught.value) == f"cannot read {missing}: No such file or directory"


def test_directory(impl: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(ArtifactError) as caught:
        impl.sha256_file(tmp_path)
    assert str(caught.value) == f"cannot read {tmp_path}: Is a directory"


def test_read_fails_after_open(impl: ModuleType) -> None:
    # /proc/self/mem opens fine but reading address 0 fails: the error after a good open.
    with pytest.raises(ArtifactError) as caught:
        impl.sha256_file("/proc/self/mem")
    assert str(caught.value) == "cannot read /proc/self/mem: Input/output error"


def test_embedded_nul_and_unprintable_paths(impl: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(ArtifactError) as caught:
        impl.sha256_file("a\0b")
    assert str(caught.value) == "cannot read 'a\\x00b': embedded null byte"
    odd = f"{tmp_path}/line\nbreak"
    with pytest.raises(ArtifactError) as caught:
        impl.sha256_file(odd)
    assert str(caught.value) == f"cannot read {odd!r}: No such file or directory"
    assert "\n" not in str(caught.value)


def test_paths_must_be_paths(impl: ModuleType) -> None:
    # Never an int taken for a file descriptor.
    with pytest.raises(TypeError):
        impl.sha256_file(0)
    with pytest.raises(TypeError):
        impl.sha256_files([0])


def test_sha256_files_names_the_bad_file(
    impl: ModuleType, sized_files: list[tuple[Path, bytes]], tmp_path: Path
) -> None:
    good = [path for path, _ in sized_files[:3]]
    missing = tmp_path / "gone"
    with pytest.raises(ArtifactError) as caught:
        impl.sha256_files([*good, missing, tmp_path])
    assert str(caught.value) == f"cannot read {missing}: No such file or directory"
    with pytest.raises(ArtifactError, match="embedded null byte"):
        impl.sha256_files([*good, "x\0"])


def test_unreadable_file(impl: ModuleType, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        secret = tmp_path / "secret"
        secret.write_bytes(b"no")
        secret.chmod(0)
        with pytest.raises(ArtifactError) as caught:
            impl.sha256_file(secret)
        assert str(caught.value) == f"cannot read {secret}: Permission denied"
        return
    # Root reads anything, so a child drops to nobody (after its imports: the interpreter may
    # live where nobody cannot read) and tries instead. pytest's tmp_path is private to root;
    # this folder lets nobody reach the file, which is root's own and 0600.
    with tempfile.TemporaryDirectory() as folder:
        os.chmod(folder, 0o755)
        secret = Path(folder) / "secret"
        secret.write_bytes(b"no")
        secret.chmod(0o600)
        child = run_python(
            """
            import importlib, os, sys
            from maelstrom_core.errors import ArtifactError
            impl = importlib.import_module(sys.argv[1])
            os.setgroups([])
            os.setresgid(65534, 65534, 65534)
            os.setresuid(65534, 65534, 65534)
            try:
                impl.sha256_file(sys.argv[2])
            except ArtifactError as error:
                print(error)
            """,
            impl.__name__,
            str(secret),
        )
    assert child.stdout.strip() == f"cannot read {secret}: Permission denied"


# ---------------------------------------------------------------- signals ------------------

SIGNAL_CHILD = """
import hashlib, importlib, os, signal, sys
impl = importlib.import_module(sys.argv[1])
if hasattr(impl, "_set_backend"):
    impl._set_backend(sys.argv[4])
fifo, mode = sys.argv[2], sys.argv[3]
# Opened read-write, the FIFO has a writer, so the hasher's open returns and its read blocks.
writer = os.open(fifo, os.O_RDWR)

class Stop(Exception):
    pass

def on_alarm(signum, frame):
    if mode == "raise":
        raise Stop
    os.write(writer, b"after the signal")
    os.close(writer)

signal.signal(signal.SIGALRM, on_alarm)
fds_before = set(os.listdir("/proc/self/fd"))
signal.setitimer(signal.ITIMER_REAL, 0.2)
try:
    print(impl.sha256_file(fifo) == hashlib.sha256(b"after the signal").digest())
except Stop:
    print("stopped", set(os.listdir("/proc/self/fd")) == fds_before)
"""


def test_signal_during_a_blocked_read_runs_its_handler(impl: ModuleType, tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    backend = getattr(impl, "_backend", lambda: "")()
    child = run_python(SIGNAL_CHILD, impl.__name__, str(fifo), "resume", backend)
    assert child.stdout.strip() == "True"


def test_exception_from_a_signal_handler_stops_the_read(impl: ModuleType, tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    backend = getattr(impl, "_backend", lambda: "")()
    child = run_python(SIGNAL_CHILD, impl.__name__, str(fifo), "raise", backend)
    assert child.stdout.strip() == "stopped True"  # and the hasher's file was closed


# ---------------------------------------------------------------- hex helpers --------------


@given(st.binary(min_size=32, max_size=32))
def test_hex_round_trip(raw: bytes) -> None:
    text = digest.to_hex(raw)
    assert text == raw.hex()
    assert digest.from_hex(text) == raw
    assert digest.from_hex(text.upper()) == raw


@pytest.mark.parametrize(
    "text",
    [
        "",
        "0" * 63,
        "0" * 65,
        "g" + "0" * 63,
        " " + "0" * 63,
        "0" * 63 + "\n",
        "0" * 62 + "-1",
        "\u0660" * 64,  # Arabic-Indic zeros: digits, but not hex digits
        "ff " * 32,  # bytes.fromhex would take this
        b"0" * 64,
        None,
    ],
    ids=[
        "empty",
        "short",
        "long",
        "non-hex",
        "space",
        "newline",
        "sign",
        "unicode",
        "spaced",
        "bytes",
        "none",
    ],
)
def test_from_hex_rejects(text: object) -> None:
    with pytest.raises(ValueError, match=r"^not a SHA-256 digest \(64 hex digits\): ") as caught:
        digest.from_hex(text)  # type: ignore[arg-type]
    assert "\n" not in str(caught.value)


def test_from_hex_message_stays_short() -> None:
    with pytest.raises(ValueError, match="not a SHA-256 digest") as caught:
        digest.from_hex("x" * 10_000)
    assert len(str(caught.value)) < 150


@pytest.mark.parametrize("raw", [b"", bytes(31), bytes(33), "0" * 32, None])
def test_to_hex_rejects(raw: object) -> None:
    with pytest.raises(ValueError, match=r"^not a SHA-256 digest \(32 bytes\): "):
        digest.to_hex(raw)  # type: ignore[arg-type]


# ---------------------------------------------------------------- the selector -------------


def test_public_surface() -> None:
    assert sorted(digest.__all__) == [
        "DIGEST_SIZE",
        "IMPLEMENTATION",
        "Sha256",
        "from_hex",
        "sha256_bytes",
        "sha256_file",
        "sha256_files",
        "to_hex",
    ]
    assert digest.IMPLEMENTATION in ("c", "py")
    picked = importlib.import_module(f"maelstrom_core._digest_{digest.IMPLEMENTATION}")
    for name in ("Sha256", "sha256_bytes", "sha256_file", "sha256_files"):
        assert getattr(digest, name) is getattr(picked, name)


SELECTOR_CHILD = """
from maelstrom_core import digest
print(digest.IMPLEMENTATION, digest.Sha256.__module__, digest.sha256_bytes(b"abc").hex())
"""
ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MAELSTROM_NO_EXTENSIONS"}
    env.update(extra)
    return env


def test_selector_honours_no_extensions() -> None:
    child = run_python(SELECTOR_CHILD, env=_env(MAELSTROM_NO_EXTENSIONS="1"))
    assert child.stdout.split() == ["py", "maelstrom_core._digest_py", ABC]


@pytest.mark.c_extension
@pytest.mark.parametrize("setting", [None, "", "0"])
def test_selector_prefers_the_extension(setting: str | None) -> None:
    env = _env() if setting is None else _env(MAELSTROM_NO_EXTENSIONS=setting)
    child = run_python(SELECTOR_CHILD, env=env)
    assert child.stdout.split() == ["c", "maelstrom_core._digest_c", ABC]


def test_selector_falls_back_when_the_extension_is_missing() -> None:
    # A meta-path finder that refuses the compiled module stands in for a build without it.
    child = run_python(
        """
        import sys
        class Refuse:
            def find_spec(self, name, path=None, target=None):
                if name == "maelstrom_core._digest_c":
                    raise ImportError("not built")
        sys.meta_path.insert(0, Refuse())
        from maelstrom_core import digest
        print(digest.IMPLEMENTATION, digest.sha256_bytes(b"abc").hex())
        """
    )
    assert child.stdout.split() == ["py", ABC]
