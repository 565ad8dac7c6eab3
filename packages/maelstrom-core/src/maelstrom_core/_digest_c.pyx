# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""SHA-256 digests in C: the compiled twin of ``_digest_py``, with the same API and errors.

Hashing uses the x86 SHA-NI instructions when the CPU has them and portable C otherwise (see
``_sha256.h``). The GIL is released while hashing large buffers and for the whole of reading and
hashing files, so other threads (the trio loop among them) keep running.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.pythread cimport (
    NOWAIT_LOCK,
    WAIT_LOCK,
    PyThread_acquire_lock,
    PyThread_allocate_lock,
    PyThread_free_lock,
    PyThread_release_lock,
    PyThread_type_lock,
)
from libc.errno cimport EINTR, errno
from libc.stdint cimport uint8_t
from libc.stdlib cimport free, malloc
from posix.fcntl cimport O_CLOEXEC, O_RDONLY
from posix.fcntl cimport open as c_open
from posix.unistd cimport close, read

from maelstrom_core._sha256 cimport (
    mael_sha256_cpu_has_shani,
    mael_sha256_ctx,
    mael_sha256_final,
    mael_sha256_init,
    mael_sha256_select,
    mael_sha256_update,
    mael_sha256_using_shani,
)


cdef extern from "Python.h":
    # Declared without an exception clause: the caller closes its file before propagating.
    int _check_signals "PyErr_CheckSignals" ()

import os

# The pure twin owns path checks and error messages, so the twins' errors cannot drift apart.
from maelstrom_core._digest_py import checked_path, read_error

__all__ = ["Sha256", "sha256_bytes", "sha256_file", "sha256_files"]

# Below this many bytes, dropping and retaking the GIL costs more than the hashing it frees
# (hashlib draws the line at 2 KiB; SHA-NI hashes 8 KiB in about 4 microseconds).
cdef enum:
    NOGIL_MIN = 8192
    DIGEST_SIZE = 32
    # Read size for files: the pure twin's (hashlib.file_digest's) 256 KiB.
    CHUNK = 256 * 1024

mael_sha256_select(1)


cdef class Sha256:
    """A streaming SHA-256 hasher: ``update`` any number of times, then ``digest``.

    ``digest`` does not end the stream: more ``update`` calls may follow. One object may be
    shared between threads; updates are serialised as hashlib's are.
    """

    cdef mael_sha256_ctx _ctx
    # Held while the state changes or is read, because update runs without the GIL.
    cdef PyThread_type_lock _lock

    def __cinit__(self):
        mael_sha256_init(&self._ctx)
        self._lock = PyThread_allocate_lock()
        if self._lock == NULL:
            raise MemoryError()

    def __dealloc__(self):
        if self._lock != NULL:
            PyThread_free_lock(self._lock)

    cdef void _acquire(self):
        if not PyThread_acquire_lock(self._lock, NOWAIT_LOCK):
            with nogil:
                PyThread_acquire_lock(self._lock, WAIT_LOCK)

    def update(self, data not None) -> None:
        cdef Py_buffer view
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            self._acquire()
            if view.len >= NOGIL_MIN:
                with nogil:
                    mael_sha256_update(&self._ctx, <const uint8_t*>view.buf, <size_t>view.len)
            else:
                mael_sha256_update(&self._ctx, <const uint8_t*>view.buf, <size_t>view.len)
            PyThread_release_lock(self._lock)
        finally:
            PyBuffer_Release(&view)

    def digest(self) -> bytes:
        cdef uint8_t out[DIGEST_SIZE]
        self._acquire()
        mael_sha256_final(&self._ctx, out)
        PyThread_release_lock(self._lock)
        return PyBytes_FromStringAndSize(<char*>out, DIGEST_SIZE)

    def hexdigest(self) -> str:
        return self.digest().hex()


def sha256_bytes(data not None) -> bytes:
    """The 32-byte SHA-256 digest of ``data``."""
    cdef Py_buffer view
    cdef mael_sha256_ctx ctx
    cdef uint8_t out[DIGEST_SIZE]
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        mael_sha256_init(&ctx)
        if view.len >= NOGIL_MIN:
            with nogil:
                mael_sha256_update(&ctx, <const uint8_t*>view.buf, <size_t>view.len)
                mael_sha256_final(&ctx, out)
        else:
            mael_sha256_update(&ctx, <const uint8_t*>view.buf, <size_t>view.len)
            mael_sha256_final(&ctx, out)
    finally:
        PyBuffer_Release(&view)
    return PyBytes_FromStringAndSize(<char*>out, DIGEST_SIZE)


def sha256_file(path) -> bytes:
    """The SHA-256 digest of the file at ``path``, read in chunks (never whole)."""
    return _hash_paths([checked_path(path)])[0]


def sha256_files(paths) -> list:
    """The SHA-256 digest of each file in ``paths``, in order.

    All files are read and hashed in one stretch without the GIL, so the per-file cost is C's.
    Stops at the first file that cannot be read and raises ``ArtifactError`` naming it.
    """
    return _hash_paths([checked_path(path) for path in paths])


cdef list _hash_paths(list names):
    cdef Py_ssize_t count = len(names)
    cdef Py_ssize_t i
    cdef Py_ssize_t failed = -1
    cdef int error = 0
    # Encoded names stay referenced by this list, so their buffers outlive the nogil stretch.
    cdef list encoded = [os.fsencode(name) for name in names]
    cdef const char** c_paths = <const char**>PyMem_Malloc(max(count, 1) * sizeof(char*))
    cdef uint8_t* digests = <uint8_t*>PyMem_Malloc(max(count, 1) * DIGEST_SIZE)
    cdef uint8_t* buffer = NULL
    try:
        if c_paths == NULL or digests == NULL:
            raise MemoryError()
        for i in range(count):
            c_paths[i] = PyBytes_AS_STRING(encoded[i])
        with nogil:
            # malloc, not PyMem: this runs without the GIL.
            buffer = <uint8_t*>malloc(CHUNK)
            if buffer != NULL:
                failed = _hash_all(c_paths, count, buffer, digests, &error)
        if buffer == NULL:
            raise MemoryError()
        if failed >= 0:
            raise read_error(names[failed], os.strerror(error))
        return [PyBytes_FromStringAndSize(<char*>digests + i * DIGEST_SIZE, DIGEST_SIZE)
                for i in range(count)]
    finally:
        free(buffer)
        PyMem_Free(c_paths)
        PyMem_Free(digests)


cdef Py_ssize_t _hash_all(const char** paths, Py_ssize_t count, uint8_t* buffer,
                          uint8_t* digests, int* error) except -2 nogil:
    """Hash each path into ``digests``; the index of the first unreadable one, or -1."""
    cdef Py_ssize_t i
    cdef int result
    for i in range(count):
        result = _hash_path(paths[i], buffer, digests + i * DIGEST_SIZE)
        if result != 0:
            error[0] = result
            return i
    return -1


cdef int _hash_path(const char* path, uint8_t* buffer, uint8_t* out) except -1 nogil:
    """0 when ``out`` holds the file's digest, else the errno that stopped the read."""
    cdef mael_sha256_ctx ctx
    cdef int fd
    cdef ssize_t got
    cdef int saved
    while True:
        fd = c_open(path, O_RDONLY | O_CLOEXEC)
        if fd >= 0:
            break
        if errno != EINTR:
            return errno
        if _signals_pending():
            return -1
    mael_sha256_init(&ctx)
    while True:
        got = read(fd, buffer, CHUNK)
        if got > 0:
            mael_sha256_update(&ctx, buffer, <size_t>got)
        elif got == 0:
            break
        elif errno != EINTR:
            saved = errno
            close(fd)
            return saved
        elif _signals_pending():
            close(fd)
            return -1
    close(fd)
    mael_sha256_final(&ctx, out)
    return 0


cdef bint _signals_pending() noexcept nogil:
    """Run Python's signal handlers after an EINTR (a FIFO, a slow file system).

    True when a handler raised (Ctrl-C): the exception is set and the read stops, as os.read's
    does.
    """
    cdef int result
    with gil:
        result = _check_signals()
    return result < 0


# Test hooks: tests force each C path in turn and hold both against hashlib. Not public API.

def _backend() -> str:
    """``"sha-ni"`` or ``"portable"``: the block function in use."""
    return "sha-ni" if mael_sha256_using_shani() else "portable"


def _available_backends() -> tuple:
    """The backends this CPU can run, fastest first."""
    return ("sha-ni", "portable") if mael_sha256_cpu_has_shani() else ("portable",)


def _set_backend(name: str) -> str:
    """Switch every hasher to backend ``name``; return the one it replaces."""
    previous = _backend()
    if name not in _available_backends():
        raise ValueError(f"backend {name!r} is not available here: {_available_backends()}")
    mael_sha256_select(1 if name == "sha-ni" else 0)
    return previous
