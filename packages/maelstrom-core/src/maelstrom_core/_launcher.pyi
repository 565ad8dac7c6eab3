# Type stub for the _launcher extension (see _launcher.pyx).

STEPS: tuple[str, ...]

MOUNT_BIND: int
MOUNT_DEVICE: int
MOUNT_DEVPTS: int
MOUNT_MQUEUE: int
MOUNT_PROC: int
MOUNT_SYS: int
MOUNT_TMP: int

NETWORK_DISABLED: int
NETWORK_LOOPBACK: int
NETWORK_LOCAL: int

class StepFailed(Exception):
    tag: int
    step: str
    ref: int
    errno: int
    def __init__(self, tag: int, ref: int, err: int) -> None: ...

def spawn(
    program: bytes,
    argv: list[bytes],
    envp: list[bytes],
    working_directory: bytes,
    uid: int,
    gid: int,
    network: int,
    layer_dirs: list[bytes],
    writable: bool,
    mounts: list[tuple[int, bytes, bytes, bool]],
    stdin_fd: int,
    stdout_fd: int,
    stderr_fd: int,
    tty: bool,
    path_value: bytes | None,
) -> tuple[int, int]: ...
