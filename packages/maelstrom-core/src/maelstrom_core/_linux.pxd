# Declarations of the Linux and libc interfaces the launcher's child uses. Nothing but extern
# blocks. Mount calls go through syscall(2) so that <sys/mount.h> (which clashes with
# <linux/mount.h> on some glibc versions) is never needed.

from libc.stdint cimport int32_t, uint16_t, uint32_t, uint64_t


cdef extern from "<sys/types.h>" nogil:
    ctypedef int pid_t
    ctypedef unsigned int uid_t
    ctypedef unsigned int gid_t
    ctypedef unsigned int mode_t


cdef extern from "<errno.h>" nogil:
    int errno
    enum:
        ENOENT
        ENOTDIR
        EINTR
        EINVAL
        EPERM
        EACCES


cdef extern from "<string.h>" nogil:
    char* strerror(int errnum)


cdef extern from "<signal.h>" nogil:
    ctypedef struct sigset_t:
        pass
    enum:
        SIGCHLD
        SIGKILL
        SIGSTOP
        SIG_SETMASK
    int sigfillset(sigset_t* s)
    int sigemptyset(sigset_t* s)
    int pthread_sigmask(int how, const sigset_t* new, sigset_t* old)


cdef extern from "<sched.h>" nogil:
    enum:
        CLONE_VM
        CLONE_VFORK
        CLONE_PIDFD
        CLONE_NEWUSER
        CLONE_NEWNS
        CLONE_NEWPID
        CLONE_NEWIPC
        CLONE_NEWUTS
        CLONE_NEWCGROUP
        CLONE_NEWNET
    int clone(int (*fn)(void*) noexcept nogil, void* stack, int flags, void* arg, ...)


cdef extern from "<unistd.h>" nogil:
    long syscall(long number, ...)
    int dup2(int oldfd, int newfd)
    int dup3(int oldfd, int newfd, int flags)
    int close(int fd)
    int chdir(const char* path)
    int access(const char* path, int mode)
    int execve(const char* path, char* const* argv, char* const* envp)
    pid_t setsid()
    ssize_t write(int fd, const void* buf, size_t count)
    ssize_t read(int fd, void* buf, size_t count)
    void _exit(int status)
    enum:
        X_OK


cdef extern from "<fcntl.h>" nogil:
    int open(const char* path, int flags, ...)
    enum:
        O_WRONLY
        O_RDONLY
        O_CLOEXEC
        O_PATH
        O_DIRECTORY
        AT_FDCWD
        AT_RECURSIVE
        AT_EMPTY_PATH


cdef extern from "<sys/stat.h>" nogil:
    int mkdir(const char* path, mode_t mode)


cdef extern from "<sys/ioctl.h>" nogil:
    int ioctl(int fd, unsigned long request, ...)
    enum:
        TIOCSCTTY


cdef extern from "<sys/prctl.h>" nogil:
    int prctl(int option, ...)
    enum:
        PR_SET_PDEATHSIG


cdef extern from "<sys/wait.h>" nogil:
    ctypedef struct siginfo_t:
        int si_signo
        int si_code
        int si_status
    enum:
        WEXITED


cdef extern from "<sys/syscall.h>" nogil:
    enum:
        SYS_mount
        SYS_umount2
        SYS_pivot_root
        SYS_open_tree
        SYS_move_mount
        SYS_fsopen
        SYS_fsconfig
        SYS_fsmount
        SYS_mount_setattr
        SYS_close_range
        SYS_rt_sigaction
        SYS_rt_sigprocmask
        SYS_pidfd_send_signal
        SYS_waitid


cdef extern from "<linux/mount.h>" nogil:
    enum:
        MS_RDONLY
        MS_NOSUID
        MS_NODEV
        MS_NOEXEC
        MS_BIND
        MS_REC
        OPEN_TREE_CLONE
        OPEN_TREE_CLOEXEC
        MOVE_MOUNT_F_EMPTY_PATH
        FSOPEN_CLOEXEC
        FSMOUNT_CLOEXEC
        FSCONFIG_CMD_CREATE
        MOUNT_ATTR_RDONLY
        MOUNT_ATTR_NOSUID
        MOUNT_ATTR_NODEV
        MOUNT_ATTR_NOEXEC
    struct mount_attr:
        uint64_t attr_set
        uint64_t attr_clr
        uint64_t propagation
        uint64_t userns_fd


cdef extern from "<linux/close_range.h>" nogil:
    enum:
        CLOSE_RANGE_CLOEXEC


cdef extern from "<sys/socket.h>" nogil:
    ctypedef unsigned int socklen_t
    struct sockaddr:
        pass
    int socket(int domain, int type, int protocol)
    ssize_t sendto(int fd, const void* buf, size_t n, int flags, const sockaddr* addr,
                   socklen_t addrlen)
    ssize_t recv(int fd, void* buf, size_t n, int flags)
    enum:
        AF_NETLINK
        SOCK_RAW
        SOCK_CLOEXEC


cdef extern from "<linux/netlink.h>" nogil:
    struct sockaddr_nl:
        uint16_t nl_family
        uint32_t nl_pid
        uint32_t nl_groups
    struct nlmsghdr:
        uint32_t nlmsg_len
        uint16_t nlmsg_type
        uint16_t nlmsg_flags
        uint32_t nlmsg_seq
        uint32_t nlmsg_pid
    struct nlmsgerr:
        int32_t error
    enum:
        NETLINK_ROUTE
        NLMSG_ERROR
