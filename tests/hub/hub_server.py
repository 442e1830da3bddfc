"""A small Hugging Face Hub-compatible HTTP server for end-to-end tests (standard library only).

It speaks the subset of the Hub API that ``huggingface_hub`` calls to create a repo, commit files (regular
files inline, large ones through the LFS batch API with a single PUT and a verify call), tag a revision,
list refs and trees, and resolve files (HEAD + GET with ``X-Repo-Commit`` and ``ETag`` / ``X-Linked-Etag``).
Errors carry ``X-Error-Code`` (``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``) so the client
raises its typed exceptions.

Storage is a folder: content-addressed blobs (``blobs/<git sha1>`` for regular files, ``lfs/<sha256>``
for LFS files) and one ``<org>--<name>.json`` per repo with its commits, branches and tags. A commit id is
the sha1 of the commit's content (parent, message, file table), as in git.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

#: Paths stored through LFS, as the Hub's default .gitattributes does.
LFS_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.pth", "*.ckpt", "*.h5", "*.msgpack")
LFS_MIN_SIZE = 10 * 1024 * 1024
GITATTRIBUTES = b"".join(f"{p} filter=lfs diff=lfs merge=lfs -text\n".encode() for p in LFS_PATTERNS)
COMMIT_SHA = re.compile(r"[0-9a-f]{40}")


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a blob with content ``data``."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The git-lfs pointer file that git stores in place of an LFS file."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


class HubError(Exception):
    """An HTTP error answer: status, ``X-Error-Code`` and message."""

    def __init__(self, status: int, code: str | None, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


@dataclass
class Repo:
    """One model repo: commits (sha -> record), branches and tags (name -> commit sha)."""

    repo_id: str
    private: bool = False
    commits: dict[str, dict] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def resolve(self, revision: str) -> str:
        """The commit sha a branch, tag or (full) commit id points at."""
        if revision in self.branches:
            return self.branches[revision]
        if revision in self.tags:
            return self.tags[revision]
        if COMMIT_SHA.fullmatch(revision) and revision in self.commits:
            return revision
        raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")

    def files(self, revision: str) -> tuple[str, dict[str, dict]]:
        """The commit sha of ``revision`` and its file table (path -> entry)."""
        sha = self.resolve(revision)
        return sha, self.commits[sha]["files"]


class HubStore:
    """Repos and blobs in a folder; every method holds the store's lock."""

    def __init__(self, root: Path):
        self.root = Path(root)
        (self.root / "blobs").mkdir(parents=True, exist_ok=True)
        (self.root / "lfs").mkdir(parents=True, exist_ok=True)
        self.repos: dict[str, Repo] = {}
        self.lock = threading.RLock()

    def repo(self, repo_id: str) -> Repo:
        """The repo ``repo_id``, or a ``RepoNotFound`` error."""
        if repo_id not in self.repos:
            raise HubError(404, "RepoNotFound", f"Repository not found: {repo_id}")
        return self.repos[repo_id]

    def create_repo(self, repo_id: str, private: bool) -> Repo:
        """A new repo whose ``main`` holds one commit with the default ``.gitattributes``."""
        with self.lock:
            if repo_id in self.repos:
                raise HubError(409, None, "You already created this model repo")
            repo = self.repos[repo_id] = Repo(repo_id, private=private)
            self.commit(repo, "main", "initial commit", [("file", ".gitattributes", GITATTRIBUTES)])
            return repo

    def put_blob(self, data: bytes) -> str:
        """Store a regular file's content; its git sha1."""
        oid = git_blob_sha1(data)
        (self.root / "blobs" / oid).write_bytes(data)
        return oid

    def lfs_path(self, sha256: str) -> Path:
        """Where the LFS object ``sha256`` is (or will be) stored."""
        return self.root / "lfs" / sha256

    def commit(self, repo: Repo, branch: str, message: str, operations: list[tuple]) -> str:
        """Apply ``operations`` (``("file", path, bytes)``, ``("lfs", path, sha256, size)``,
        ``("delete", path)``, ``("delete_folder", path)``) on top of ``branch``; the new commit's sha."""
        with self.lock:
            parent = repo.branches.get(branch)
            if parent is None and repo.commits:
                raise HubError(404, "RevisionNotFound", f"Invalid rev id: {branch}")
            files = dict(repo.commits[parent]["files"]) if parent else {}
            for op in operations:
                if op[0] == "file":
                    _, path, data = op
                    files[path] = {"oid": self.put_blob(data), "size": len(data), "lfs": None}
                elif op[0] == "lfs":
                    _, path, sha256, size = op
                    stored = self.lfs_path(sha256)
                    if not stored.is_file() or stored.stat().st_size != size:
                        raise HubError(422, None, f"LFS object {sha256} of {path} was not uploaded")
                    pointer = lfs_pointer(sha256, size)
                    files[path] = {"oid": git_blob_sha1(pointer), "size": size, "lfs": sha256}
                elif op[0] == "delete":
                    if files.pop(op[1], None) is None:
                        raise HubError(404, "EntryNotFound", f"A file with this name doesn't exist: {op[1]}")
                else:
                    prefix = op[1].rstrip("/") + "/"
                    files = {p: e for p, e in files.items() if not p.startswith(prefix)}
            record = {"parent": parent, "message": message, "files": files}
            sha = hashlib.sha1(json.dumps(record, sort_keys=True).encode()).hexdigest()
            repo.commits[sha] = record
            repo.branches[branch] = sha
            self._persist(repo)
            return sha

    def create_tag(self, repo: Repo, revision: str, tag: str) -> None:
        """Point the new tag ``tag`` at ``revision``'s commit."""
        with self.lock:
            sha = repo.resolve(revision)
            if tag in repo.tags:
                raise HubError(409, None, f"Tag {tag} already exists")
            repo.tags[tag] = sha
            self._persist(repo)

    def create_branch(self, repo: Repo, branch: str, starting_point: str | None) -> None:
        """A new branch at ``starting_point`` (default: ``main``'s head)."""
        with self.lock:
            if branch in repo.branches:
                raise HubError(409, None, f"Branch {branch} already exists")
            repo.branches[branch] = repo.resolve(starting_point or "main")
            self._persist(repo)

    def read(self, entry: dict) -> bytes:
        """The content of a file-table entry."""
        if entry["lfs"]:
            return self.lfs_path(entry["lfs"]).read_bytes()
        return (self.root / "blobs" / entry["oid"]).read_bytes()

    def _persist(self, repo: Repo) -> None:
        state = {"private": repo.private, "commits": repo.commits, "branches": repo.branches, "tags": repo.tags}
        path = self.root / f"{repo.repo_id.replace('/', '--')}.json"
        path.write_text(json.dumps(state, indent=1, sort_keys=True))


def is_lfs(path: str, size: int, sample: bytes) -> bool:
    """Whether the Hub would store ``path`` through LFS: a tracked pattern, a large or a binary file."""
    name = path.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(name, p) for p in LFS_PATTERNS) or size > LFS_MIN_SIZE or b"\0" in sample


class HubHandler(BaseHTTPRequestHandler):
    """Routes one request; ``self.server.hub`` is the ``HubServer``."""

    protocol_version = "HTTP/1.1"  # keep-alive, as the client expects; every answer has a Content-Length

    # --- plumbing -------------------------------------------------------------------------------------------
    def log_message(self, format, *args):
        pass

    def _body(self) -> bytes:
        # Always drain the body, even when answering an error: on a kept-alive connection unread bytes would be
        # parsed as the next request.
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None, head: bool = False):
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _json(self, payload, status: int = 200, headers: dict[str, str] | None = None):
        self._send(status, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})})

    def _dispatch(self, method: str):
        hub: HubServer = self.server.hub
        url = urlsplit(self.path)
        body = self._body()
        hub.requests.append((method, url.path, self.headers.get("User-Agent", "")))
        try:
            for pattern, handler in ROUTES[method]:
                match = re.fullmatch(pattern, url.path)
                if match:
                    groups = [unquote(g) for g in match.groups()]
                    return handler(self, hub, *groups, body=body, query=parse_qs(url.query))
            raise HubError(404, None, f"no route for {method} {url.path}")
        except HubError as err:
            headers = {"X-Error-Message": err.message, **err.headers}
            if err.code:
                headers["X-Error-Code"] = err.code
            body = b"" if method == "HEAD" else json.dumps({"error": err.message}).encode()
            self.send_response(err.status)
            for key, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    # --- API ------------------------------------------------------------------------------------------------
    def create_repo(self, hub, *, body, query):
        payload = json.loads(body)
        repo_id = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else payload["name"]
        private = payload.get("private") or payload.get("visibility") == "private"
        url = f"{hub.url}/{repo_id}"
        try:
            hub.store.create_repo(repo_id, bool(private))
        except HubError as err:
            if err.status == 409:
                return self._json({"error": err.message, "url": url}, status=409)
            raise
        self._json({"url": url, "name": repo_id, "id": repo_id})

    def validate_yaml(self, hub, *, body, query):
        content = json.loads(body)["content"]
        if content.startswith("---") and "\n---" not in content[3:]:
            return self._json({"errors": [{"message": "metadata block is not closed by ---"}]}, status=400)
        self._json({"errors": [], "warnings": []})

    def preupload(self, hub, repo_id, revision, *, body, query):
        repo = hub.store.repo(repo_id)
        _, files = repo.files(revision)
        answer = []
        for item in json.loads(body)["files"]:
            lfs = is_lfs(item["path"], item["size"], base64.b64decode(item["sample"]))
            current = files.get(item["path"])
            oid = None if current is None else (current["lfs"] or current["oid"])
            answer.append(
                {"path": item["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid}
            )
        self._json({"files": answer, "commitOid": repo.resolve(revision)})

    def lfs_batch(self, hub, repo_id, *, body, query):
        hub.store.repo(repo_id)
        objects = []
        for obj in json.loads(body)["objects"]:
            entry = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            stored = hub.store.lfs_path(obj["oid"])
            if not (stored.is_file() and stored.stat().st_size == obj["size"]):
                base = f"{hub.url}/lfs-objects/{repo_id}/{obj['oid']}"
                entry["actions"] = {"upload": {"href": base}, "verify": {"href": f"{base}/verify"}}
            objects.append(entry)
        self._json({"transfer": "basic", "objects": objects}, headers={"Content-Type": "application/vnd.git-lfs+json"})

    def lfs_put(self, hub, repo_id, oid, *, body, query):
        if hashlib.sha256(body).hexdigest() != oid:
            raise HubError(400, None, f"uploaded content does not hash to {oid}")
        hub.store.lfs_path(oid).write_bytes(body)
        self._send(200)

    def lfs_verify(self, hub, repo_id, oid, *, body, query):
        stored = hub.store.lfs_path(oid)
        if not (stored.is_file() and stored.stat().st_size == json.loads(body)["size"]):
            raise HubError(404, None, f"LFS object {oid} not found")
        self._json({})

    def commit(self, hub, repo_id, revision, *, body, query):
        repo = hub.store.repo(repo_id)
        repo.resolve(revision)
        message, operations = "", []
        for line in body.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                message = value["summary"]
            elif key == "file":
                operations.append(("file", value["path"], base64.b64decode(value["content"])))
            elif key == "lfsFile":
                operations.append(("lfs", value["path"], value["oid"], value["size"]))
            elif key == "deletedFile":
                operations.append(("delete", value["path"]))
            elif key == "deletedFolder":
                operations.append(("delete_folder", value["path"]))
            else:
                raise HubError(400, None, f"unsupported commit operation {key!r}")
        if revision not in repo.branches:
            raise HubError(400, None, f"can only commit to a branch, not {revision!r}")
        sha = hub.store.commit(repo, revision, message, operations)
        self._json({"commitUrl": f"{hub.url}/{repo_id}/commit/{sha}", "commitOid": sha, "pullRequestUrl": None})

    def tag(self, hub, repo_id, revision, *, body, query):
        hub.store.create_tag(hub.store.repo(repo_id), revision, json.loads(body)["tag"])
        self._json({})

    def branch(self, hub, repo_id, branch, *, body, query):
        payload = json.loads(body) if body else {}
        hub.store.create_branch(hub.store.repo(repo_id), branch, payload.get("startingPoint"))
        self._json({})

    def model_info(self, hub, repo_id, revision=None, *, body, query):
        repo = hub.store.repo(repo_id)
        sha, files = repo.files(revision or "main")
        siblings = [{"rfilename": path} for path in sorted(files)]
        self._json(
            {
                "id": repo_id,
                "modelId": repo_id,
                "sha": sha,
                "private": repo.private,
                "siblings": siblings,
                "tags": [],
                "library_name": None,
            }
        )

    def tree(self, hub, repo_id, revision, folder="", *, body, query):
        _, files = hub.store.repo(repo_id).files(revision)
        recursive = query.get("recursive", ["false"])[0].lower() == "true"
        prefix = folder.strip("/") + "/" if folder.strip("/") else ""
        listing, folders = [], set()
        for path in sorted(files):
            if not path.startswith(prefix):
                continue
            rest = path[len(prefix) :]
            parts = rest.split("/")
            for depth in range(1, len(parts)):
                if recursive or depth == 1:
                    folders.add(prefix + "/".join(parts[:depth]))
            if recursive or len(parts) == 1:
                entry = files[path]
                item = {"type": "file", "path": path, "size": entry["size"], "oid": entry["oid"]}
                if entry["lfs"]:
                    item["lfs"] = {
                        "oid": entry["lfs"],
                        "size": entry["size"],
                        "pointerSize": len(lfs_pointer(entry["lfs"], entry["size"])),
                    }
                listing.append(item)
        if prefix and not listing and not folders:
            raise HubError(404, "EntryNotFound", f"{folder} does not exist")
        listing += [
            {"type": "directory", "path": path, "oid": hashlib.sha1(path.encode()).hexdigest()}
            for path in sorted(folders)
        ]
        self._json(listing)

    def refs(self, hub, repo_id, *, body, query):
        repo = hub.store.repo(repo_id)

        def refs(table, kind):
            return [{"name": n, "ref": f"refs/{kind}/{n}", "targetCommit": s} for n, s in sorted(table.items())]

        self._json(
            {
                "branches": refs(repo.branches, "heads"),
                "tags": refs(repo.tags, "tags"),
                "converts": [],
                "pullRequests": [],
            }
        )

    def resolve(self, hub, repo_id, revision, path, *, body, query):
        head = self.command == "HEAD"
        repo = hub.store.repo(repo_id)
        sha, files = repo.files(revision)
        if path not in files:
            raise HubError(404, "EntryNotFound", f"{path} does not exist at {revision}", {"X-Repo-Commit": sha})
        entry = files[path]
        headers = {"X-Repo-Commit": sha, "Content-Type": "application/octet-stream"}
        if entry["lfs"]:
            headers.update(
                {"ETag": f'"{entry["lfs"]}"', "X-Linked-Etag": f'"{entry["lfs"]}"', "X-Linked-Size": str(entry["size"])}
            )
        else:
            headers["ETag"] = f'"{entry["oid"]}"'
        data = hub.store.read(entry) if not head else b""
        self.send_response(200)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(entry["size"]))
        self.end_headers()
        if not head:
            self.wfile.write(data)


_REPO = r"([^/]+/[^/]+)"
ROUTES: dict[str, list[tuple[str, callable]]] = {
    "POST": [
        (r"/api/repos/create", HubHandler.create_repo),
        (r"/api/validate-yaml", HubHandler.validate_yaml),
        (rf"/api/models/{_REPO}/preupload/([^/]+)", HubHandler.preupload),
        (rf"/{_REPO}\.git/info/lfs/objects/batch", HubHandler.lfs_batch),
        (rf"/lfs-objects/{_REPO}/([0-9a-f]{{64}})/verify", HubHandler.lfs_verify),
        (rf"/api/models/{_REPO}/commit/([^/]+)", HubHandler.commit),
        (rf"/api/models/{_REPO}/tag/([^/]+)", HubHandler.tag),
        (rf"/api/models/{_REPO}/branch/([^/]+)", HubHandler.branch),
    ],
    "PUT": [(rf"/lfs-objects/{_REPO}/([0-9a-f]{{64}})", HubHandler.lfs_put)],
    "GET": [
        (rf"/api/models/{_REPO}", HubHandler.model_info),
        (rf"/api/models/{_REPO}/revision/([^/]+)", HubHandler.model_info),
        (rf"/api/models/{_REPO}/tree/([^/]+)", HubHandler.tree),
        (rf"/api/models/{_REPO}/tree/([^/]+)/(.+)", HubHandler.tree),
        (rf"/api/models/{_REPO}/refs", HubHandler.refs),
        (rf"/{_REPO}/resolve/([^/]+)/(.+)", HubHandler.resolve),
    ],
    "HEAD": [(rf"/{_REPO}/resolve/([^/]+)/(.+)", HubHandler.resolve)],
}


class HubServer:
    """The test Hub on ``127.0.0.1`` at a free port, serving from ``root``; ``start``/``stop`` it."""

    def __init__(self, root: Path):
        self.store = HubStore(root)
        self.requests: list[tuple[str, str, str]] = []
        """``(method, path, user agent)`` of every request served, for assertions."""
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), HubHandler)
        self._httpd.daemon_threads = True
        self._httpd.hub = self
        # A short poll interval keeps stop() (once per test) quick.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="test-hub", daemon=True
        )

    @property
    def url(self) -> str:
        """The endpoint, ``http://127.0.0.1:PORT``."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> HubServer:
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()
