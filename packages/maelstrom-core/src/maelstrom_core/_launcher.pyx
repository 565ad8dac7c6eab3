# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""The container launcher's C core: build a syscall script, clone, run it in the child.

The parent turns Python values into one ``Script`` of C steps; every string the child needs is a
``bytes`` object kept alive by the parent, and every array is allocated before ``clone``. The
child shares the parent's memory (``CLONE_VM``) and runs only ``_child``: plain syscalls, no
allocation, no locks, no GIL. ``CLONE_VFORK`` suspends the calling thread until the child has
exec'd or exited, so the script cannot be freed under the child, and a failing step can be
reported through the script itself: the child stores (step, errno) and ``_exit``s, and the
parent reads it once ``clone`` returns. This module knows nothing about jobs; ``launcher.py``
validates specs and turns ``StepFailed`` into words.
"""

from libc.stdlib cimport malloc, free
from libc.string cimport memset

from maelstrom_core._linux cimport *

import os
import struct


# Step tags, reported back in StepFailed. The order is the public contract with launcher.py.
STEPS = (
    "clone",
    "open-layer",
    "pdeathsig",
    "setsid",
    "stdio",
    "controlling-tty",
    "uid-map",
    "setgroups",
    "gid-map",
    "loopback",
    "root-tmpfs",
    "root-mkdir",
    "root-overlay",
    "root-bind",
    "root-attach",
    "root-chdir",
    "mount-create",
    "pivot-root",
    "detach-old-root",
    "mount-attach",
    "working-directory",
    "close-range",
    "exec",
)

cdef enum Tag:
    T_CLONE, T_OPEN_LAYER, T_PDEATHSIG, T_SETSID, T_STDIO, T_CTTY, T_UID_MAP, T_SETGROUPS,
    T_GID_MAP, T_LOOPBACK, T_ROOT_TMPFS, T_ROOT_MKDIR, T_ROOT_OVERLAY, T_ROOT_BIND,
    T_ROOT_ATTACH, T_ROOT_CHDIR, T_MOUNT_CREATE, T_PIVOT, T_DETACH, T_MOUNT_ATTACH, T_CHDIR,
    T_CLOSE_RANGE, T_EXEC

cdef enum Op:
    OP_PDEATHSIG, OP_SETSID, OP_DUP2, OP_CTTY, OP_WRITE_FILE, OP_LOOPBACK, OP_MOUNT, OP_MKDIR,
    OP_FSMOUNT, OP_OPEN_TREE, OP_CHDIR, OP_PIVOT, OP_DETACH, OP_MOVE_MOUNT, OP_CLOSE_RANGE,
    OP_EXEC, OP_OPEN_LAYER

# Mount kinds as launcher.py passes them.
MOUNT_BIND = 0
MOUNT_DEVICE = 1
MOUNT_DEVPTS = 2
MOUNT_MQUEUE = 3
MOUNT_PROC = 4
MOUNT_SYS = 5
MOUNT_TMP = 6

NETWORK_DISABLED = 0
NETWORK_LOOPBACK = 1
NETWORK_LOCAL = 2

cdef enum:
    STACK_SIZE = 65536
    REPLY_SIZE = 1024
    P_PIDFD = 3
    ESRCH = 3
    RTM_SETLINK = 19
    NLM_F_REQUEST = 1
    NLM_F_ACK = 4
    IFF_UP = 1
    DETACH = 2  # MNT_DETACH, which only <sys/mount.h> defines


cdef struct Step:
    int op
    int tag
    int ref  # index into the caller's mount list (or layer list), -1 when none
    int a
    int b
    unsigned long flags
    const char* s1
    const char* s2
    const char* s3
    const char* s4
    size_t n


cdef struct Script:
    Step* steps
    int nsteps
    int* slots
    char** argv
    char** envp
    char** candidates
    int ncandidates
    const char* program
    sockaddr_nl nl_addr
    char reply[REPLY_SIZE]
    unsigned long default_action[4]  # a zeroed kernel sigaction: SIG_DFL, no flags, no mask
    unsigned long empty_mask
    int failed_step
    int failed_errno


class StepFailed(Exception):
    """A step of the script failed: ``STEPS[tag]``, the caller's index ``ref``, and ``errno``."""

    def __init__(self, int tag, int ref, int err):
        super().__init__(tag, ref, err)
        self.tag = tag
        self.step = STEPS[tag]
        self.ref = ref
        self.errno = err


# --- the child ------------------------------------------------------------------------------


cdef inline int _fail() noexcept nogil:
    cdef int e = errno
    return e if e != 0 else EINVAL


cdef int _loopback_up(Script* sc, const Step* st) noexcept nogil:
    cdef int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE)
    cdef ssize_t got
    cdef const nlmsghdr* hdr
    cdef const nlmsgerr* err
    if fd < 0:
        return _fail()
    if sendto(fd, st.s1, st.n, 0, <const sockaddr*>&sc.nl_addr, sizeof(sockaddr_nl)) < 0:
        return _fail()
    got = recv(fd, sc.reply, REPLY_SIZE, 0)
    if got < 0:
        return _fail()
    hdr = <const nlmsghdr*>sc.reply
    if <size_t>got >= sizeof(nlmsghdr) + sizeof(nlmsgerr) and hdr.nlmsg_type == NLMSG_ERROR:
        err = <const nlmsgerr*>(sc.reply + sizeof(nlmsghdr))
        if err.error < 0:
            return -err.error
    close(fd)
    return 0


cdef int _write_file(const Step* st) noexcept nogil:
    cdef int fd = open(st.s1, O_WRONLY | O_CLOEXEC)
    if fd < 0:
        return _fail()
    if write(fd, st.s2, st.n) != <ssize_t>st.n:
        return _fail()
    close(fd)
    return 0


cdef int _fsmount(Script* sc, const Step* st) noexcept nogil:
    cdef int fsfd = <int>syscall(SYS_fsopen, st.s1, FSOPEN_CLOEXEC)
    cdef int mfd
    if fsfd < 0:
        return _fail()
    if syscall(SYS_fsconfig, fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0:
        return _fail()
    mfd = <int>syscall(SYS_fsmount, fsfd, FSMOUNT_CLOEXEC, st.flags)
    if mfd < 0:
        return _fail()
    close(fsfd)
    sc.slots[st.a] = mfd
    return 0


cdef int _open_tree(Script* sc, const Step* st) noexcept nogil:
    cdef mount_attr attr
    cdef int fd = <int>syscall(SYS_open_tree, AT_FDCWD, st.s1, st.flags)
    if fd < 0:
        return _fail()
    if st.b:
        memset(&attr, 0, sizeof(attr))
        attr.attr_set = MOUNT_ATTR_RDONLY
        if syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr,
                   sizeof(attr)) < 0:
            return _fail()
    sc.slots[st.a] = fd
    return 0


cdef int _open_layer(const Step* st) noexcept nogil:
    # Replace the inherited copy of the parent's fd with one opened in the child's own mount
    # namespace: overlayfs refuses layers whose mount lives in another namespace.
    cdef int fd = open(st.s1, O_PATH | O_DIRECTORY | O_CLOEXEC)
    if fd < 0:
        return _fail()
    if dup3(fd, st.a, O_CLOEXEC) < 0:
        return _fail()
    close(fd)
    return 0


cdef int _exec(Script* sc) noexcept nogil:
    cdef int sig, i
    # Handlers were copied from Python (the child has its own table without CLONE_SIGHAND);
    # exec would reset them, but SIG_IGN (Python ignores SIGPIPE and SIGXFSZ) survives exec and
    # must not leak into the job. Signals stay blocked until this is done.
    for sig in range(1, 65):
        if sig != SIGKILL and sig != SIGSTOP:
            syscall(SYS_rt_sigaction, sig, sc.default_action, NULL, 8)
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, &sc.empty_mask, NULL, 8)
    for i in range(sc.ncandidates):
        if access(sc.candidates[i], X_OK) == 0:
            execve(sc.candidates[i], sc.argv, sc.envp)
            return _fail()
    execve(sc.program, sc.argv, sc.envp)
    return _fail()


cdef int _run_step(Script* sc, const Step* st) noexcept nogil:
    if st.op == OP_PDEATHSIG:
        return 0 if prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) == 0 else _fail()
    if st.op == OP_SETSID:
        return 0 if setsid() >= 0 else _fail()
    if st.op == OP_DUP2:
        return 0 if dup2(st.a, st.b) >= 0 else _fail()
    if st.op == OP_CTTY:
        return 0 if ioctl(st.a, TIOCSCTTY, 0) == 0 else _fail()
    if st.op == OP_WRITE_FILE:
        return _write_file(st)
    if st.op == OP_LOOPBACK:
        return _loopback_up(sc, st)
    if st.op == OP_MOUNT:
        return 0 if syscall(SYS_mount, st.s1, st.s2, st.s3, st.flags, st.s4) == 0 else _fail()
    if st.op == OP_MKDIR:
        return 0 if mkdir(st.s1, 0o755) == 0 else _fail()
    if st.op == OP_FSMOUNT:
        return _fsmount(sc, st)
    if st.op == OP_OPEN_TREE:
        return _open_tree(sc, st)
    if st.op == OP_CHDIR:
        return 0 if chdir(st.s1) == 0 else _fail()
    if st.op == OP_PIVOT:
        return 0 if syscall(SYS_pivot_root, ".", ".") == 0 else _fail()
    if st.op == OP_DETACH:
        return 0 if syscall(SYS_umount2, ".", DETACH) == 0 else _fail()
    if st.op == OP_MOVE_MOUNT:
        if syscall(SYS_move_mount, sc.slots[st.a], "", AT_FDCWD, st.s1,
                   MOVE_MOUNT_F_EMPTY_PATH) != 0:
            return _fail()
        close(sc.slots[st.a])
        return 0
    if st.op == OP_CLOSE_RANGE:
        return 0 if syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) == 0 else _fail()
    if st.op == OP_EXEC:
        return _exec(sc)
    if st.op == OP_OPEN_LAYER:
        return _open_layer(st)
    return EINVAL


cdef int _child(void* arg) noexcept nogil:
    cdef Script* sc = <Script*>arg
    cdef int i, err
    for i in range(sc.nsteps):
        err = _run_step(sc, &sc.steps[i])
        if err != 0:
            sc.failed_errno = err
            sc.failed_step = i
            _exit(127)
    _exit(127)
    return 0


# --- the parent -----------------------------------------------------------------------------


cdef class _Builder:
    """Owns the script's C memory and the bytes its pointers point into, for one launch."""

    cdef Script sc
    cdef int cap
    cdef list keep

    def __cinit__(self, int cap, int nslots):
        memset(&self.sc, 0, sizeof(Script))
        self.keep = []
        self.cap = cap
        self.sc.steps = <Step*>malloc(cap * sizeof(Step))
        self.sc.slots = <int*>malloc((nslots + 1) * sizeof(int))
        if self.sc.steps == NULL or self.sc.slots == NULL:
            raise MemoryError()
        self.sc.failed_step = -1

    def __dealloc__(self):
        free(self.sc.steps)
        free(self.sc.slots)
        free(self.sc.argv)
        free(self.sc.envp)
        free(self.sc.candidates)

    cdef const char* s(self, bytes value) except? NULL:
        self.keep.append(value)
        return <const char*>value

    cdef Step* add(self, int op, int tag, int ref=-1) except NULL:
        cdef Step* st
        if self.sc.nsteps >= self.cap:
            raise OverflowError("launcher script overflow")
        st = &self.sc.steps[self.sc.nsteps]
        memset(st, 0, sizeof(Step))
        st.op = op
        st.tag = tag
        st.ref = ref
        self.sc.nsteps += 1
        return st

    cdef char** vector(self, list items) except NULL:
        cdef Py_ssize_t i, n = len(items)
        cdef char** out = <char**>malloc((n + 1) * sizeof(char*))
        if out == NULL:
            raise MemoryError()
        for i in range(n):
            out[i] = <char*>self.s(<bytes>items[i])
        out[n] = NULL
        return out


def spawn(
    bytes program,
    list argv,
    list envp,
    bytes working_directory,
    unsigned int uid,
    unsigned int gid,
    int network,
    list layer_dirs,
    bint writable,
    list mounts,
    int stdin_fd,
    int stdout_fd,
    int stderr_fd,
    bint tty,
    bytes path_value,
):
    """Start ``program`` in a new container; return ``(pid, pidfd)`` or raise ``StepFailed``.

    ``layer_dirs`` are host directories, top first. ``mounts`` are tuples
    ``(kind, mount_point, source, read_only)`` with ``kind`` one of the ``MOUNT_*`` values and
    ``source`` a host path for binds and devices. ``path_value`` is the job's ``PATH`` (or
    ``None``); a program without ``/`` is searched for in it by the child. The stdio fds must
    be 3 or more (or, with ``tty``, ``stdin_fd`` is the pty slave used for all three).
    """
    cdef Py_ssize_t nmounts = len(mounts), nlayers = len(layer_dirs), i
    cdef _Builder b = _Builder(32 + 2 * nmounts, nmounts)
    cdef Script* sc = &b.sc
    cdef Step* st
    cdef int flags, pid = -1, pidfd = -1, err, fd
    cdef int* layer_fds = NULL
    cdef void* stack = NULL
    cdef sigset_t all_signals, saved
    cdef siginfo_t info
    cdef unsigned int outer_uid = os.geteuid(), outer_gid = os.getegid()
    cdef bytes top, entry, data
    cdef tuple mount
    cdef int kind

    if nlayers == 0:
        raise ValueError("at least one layer directory is needed")
    sc.program = b.s(program)
    sc.argv = b.vector(argv)
    sc.envp = b.vector(envp)
    candidates = []
    if path_value is not None and b"/" not in program:
        for entry in path_value.split(b":"):
            if entry:
                candidates.append(entry.rstrip(b"/") + b"/" + program)
    sc.candidates = b.vector(candidates)
    sc.ncandidates = len(candidates)
    sc.nl_addr.nl_family = AF_NETLINK

    b.add(OP_PDEATHSIG, T_PDEATHSIG)
    b.add(OP_SETSID, T_SETSID)
    if tty:
        for i in range(3):
            st = b.add(OP_DUP2, T_STDIO, i)
            st.a = stdin_fd
            st.b = <int>i
        st = b.add(OP_CTTY, T_CTTY)
        st.a = 0
    else:
        for i, fd in enumerate((stdin_fd, stdout_fd, stderr_fd)):
            st = b.add(OP_DUP2, T_STDIO, i)
            st.a = fd
            st.b = <int>i

    st = b.add(OP_WRITE_FILE, T_UID_MAP)
    data = b"%d %d 1\n" % (uid, outer_uid)
    st.s1 = b.s(b"/proc/self/uid_map")
    st.s2 = b.s(data)
    st.n = len(data)
    st = b.add(OP_WRITE_FILE, T_SETGROUPS)
    st.s1 = b.s(b"/proc/self/setgroups")
    st.s2 = b.s(b"deny\n")
    st.n = 5
    st = b.add(OP_WRITE_FILE, T_GID_MAP)
    data = b"%d %d 1\n" % (gid, outer_gid)
    st.s1 = b.s(b"/proc/self/gid_map")
    st.s2 = b.s(data)
    st.n = len(data)

    if network == NETWORK_LOOPBACK:
        st = b.add(OP_LOOPBACK, T_LOOPBACK)
        # nlmsghdr(len, RTM_SETLINK, REQUEST|ACK, seq 1, pid 0) + ifinfomsg(AF_UNSPEC, type 0,
        # ifindex 1 = lo, flags IFF_UP, change IFF_UP)
        data = struct.pack(
            "=IHHII BxHiII", 32, RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK, 1, 0,
            0, 0, 1, IFF_UP, IFF_UP,
        )
        st.s1 = b.s(data)
        st.n = len(data)

    # The root. Layers are named to overlayfs as /proc/self/fd/N, which keeps the option string
    # short, needs no escaping, and stays valid after a tmpfs is mounted over the top layer's
    # path. The parent opens the layers first so that each N is a number it holds (the child's
    # table is a copy of ours at clone time); the child reopens each layer onto the same N.
    top = layer_dirs[0]
    if writable or nlayers > 1:
        layer_fds = <int*>malloc(nlayers * sizeof(int))
        if layer_fds == NULL:
            raise MemoryError()
        for i in range(nlayers):
            layer_fds[i] = -1
    try:
        if layer_fds != NULL:
            for i in range(nlayers):
                fd = open(<const char*>(<bytes>layer_dirs[i]), O_PATH | O_DIRECTORY | O_CLOEXEC)
                if fd < 0:
                    raise StepFailed(T_OPEN_LAYER, i, errno)
                layer_fds[i] = fd
            lower = b":".join([b"/proc/self/fd/%d" % layer_fds[i] for i in range(nlayers)])
            for i in range(nlayers):
                st = b.add(OP_OPEN_LAYER, T_OPEN_LAYER, i)
                st.s1 = b.s(layer_dirs[i])
                st.a = layer_fds[i]
        if writable:
            st = b.add(OP_MOUNT, T_ROOT_TMPFS)
            st.s1 = b.s(b"tmpfs")
            st.s2 = b.s(top)
            st.s3 = st.s1
            st.flags = MS_NOSUID | MS_NODEV
            st.s4 = b.s(b"mode=0755")
            st = b.add(OP_CHDIR, T_ROOT_CHDIR)
            st.s1 = b.s(top)
            for entry in (b"upper", b"work", b"root"):
                st = b.add(OP_MKDIR, T_ROOT_MKDIR)
                st.s1 = b.s(entry)
            st = b.add(OP_MOUNT, T_ROOT_OVERLAY)
            st.s1 = b.s(b"overlay")
            st.s2 = b.s(b"root")
            st.s3 = st.s1
            st.s4 = b.s(b"userxattr,lowerdir=" + lower + b",upperdir=upper,workdir=work")
            st = b.add(OP_CHDIR, T_ROOT_CHDIR)
            st.s1 = b.s(b"root")
        elif nlayers > 1:
            st = b.add(OP_MOUNT, T_ROOT_OVERLAY)
            st.s1 = b.s(b"overlay")
            st.s2 = b.s(top)
            st.s3 = st.s1
            st.flags = MS_RDONLY
            st.s4 = b.s(b"userxattr,lowerdir=" + lower)
            st = b.add(OP_CHDIR, T_ROOT_CHDIR)
            st.s1 = b.s(top)
        else:
            # overlayfs needs two lower layers when it has no upper; one layer is a bind.
            st = b.add(OP_OPEN_TREE, T_ROOT_BIND)
            st.s1 = b.s(top)
            st.flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE
            st.a = nmounts
            st.b = 1
            st = b.add(OP_MOVE_MOUNT, T_ROOT_ATTACH)
            st.a = nmounts
            st.s1 = b.s(top)
            st = b.add(OP_CHDIR, T_ROOT_CHDIR)
            st.s1 = b.s(top)

        # Mounts are created against the host tree before pivot_root (the kernel refuses a new
        # proc or sysfs once no full one is visible) and attached after it, so their mount
        # points resolve inside the container, symlinks included.
        for i in range(nmounts):
            mount = <tuple>mounts[i]
            kind = mount[0]
            if kind == MOUNT_DEVPTS:
                continue
            if kind == MOUNT_BIND or kind == MOUNT_DEVICE:
                st = b.add(OP_OPEN_TREE, T_MOUNT_CREATE, i)
                st.s1 = b.s(mount[2])
                st.flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC
                if kind == MOUNT_BIND or mount[2] == b"/dev/shm":
                    st.flags |= AT_RECURSIVE
                st.b = 1 if mount[3] else 0
            else:
                st = b.add(OP_FSMOUNT, T_MOUNT_CREATE, i)
                st.s1 = b.s(
                    {MOUNT_MQUEUE: b"mqueue", MOUNT_PROC: b"proc", MOUNT_SYS: b"sysfs",
                     MOUNT_TMP: b"tmpfs"}[kind]
                )
                st.flags = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV
                if kind != MOUNT_TMP:
                    st.flags |= MOUNT_ATTR_NOEXEC
            st.a = <int>i

        b.add(OP_PIVOT, T_PIVOT)
        b.add(OP_DETACH, T_DETACH)

        for i in range(nmounts):
            mount = <tuple>mounts[i]
            if mount[0] == MOUNT_DEVPTS:
                st = b.add(OP_MOUNT, T_MOUNT_ATTACH, i)
                st.s1 = b.s(b"devpts")
                st.s2 = b.s(mount[1])
                st.s3 = st.s1
                st.flags = MS_NOSUID | MS_NOEXEC
                st.s4 = b.s(b"newinstance,ptmxmode=0666,mode=0620")
            else:
                st = b.add(OP_MOVE_MOUNT, T_MOUNT_ATTACH, i)
                st.a = <int>i
                st.s1 = b.s(mount[1])

        st = b.add(OP_CHDIR, T_CHDIR)
        st.s1 = b.s(working_directory)
        b.add(OP_CLOSE_RANGE, T_CLOSE_RANGE)
        b.add(OP_EXEC, T_EXEC)

        stack = malloc(STACK_SIZE)
        if stack == NULL:
            raise MemoryError()
        flags = (CLONE_VM | CLONE_VFORK | CLONE_PIDFD | CLONE_NEWUSER | CLONE_NEWNS
                 | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP | SIGCHLD)
        if network != NETWORK_LOCAL:
            flags |= CLONE_NEWNET
        # Signals stay blocked across the clone so that no Python-installed handler can run in
        # the child, which shares our memory; the child unblocks them just before execve.
        sigfillset(&all_signals)
        pthread_sigmask(SIG_SETMASK, &all_signals, &saved)
        with nogil:
            pid = clone(_child, <char*>stack + STACK_SIZE, flags, sc, &pidfd)
            err = errno
        pthread_sigmask(SIG_SETMASK, &saved, NULL)
        if pid < 0:
            raise StepFailed(T_CLONE, -1, err)
        if sc.failed_step >= 0:
            # The child has _exited already (vfork semantics); reap it before reporting.
            with nogil:
                while syscall(SYS_waitid, P_PIDFD, pidfd, &info, WEXITED, NULL) < 0:
                    if errno != EINTR:
                        break
            close(pidfd)
            st = &sc.steps[sc.failed_step]
            raise StepFailed(st.tag, st.ref, sc.failed_errno)
        return pid, pidfd
    finally:
        free(stack)
        if layer_fds != NULL:
            for i in range(nlayers):
                if layer_fds[i] >= 0:
                    close(layer_fds[i])
            free(layer_fds)

