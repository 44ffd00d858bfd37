"""In-memory stand-in for the Hugging Face Hub, for offline end-to-end tests.

Implements just the endpoints that the real ``huggingface_hub`` (2.4.0) client calls for model repos (and for
dataset and Space repos, the same ones):
``create_repo``, ``upload_folder``/``upload_file``/``create_commit``, README YAML validation,
``model_info``, ``list_repo_tree``, ``snapshot_download`` and ``hf_hub_download``.

    with HubServer(tokens={"hf_test"}, forbidden={"other/repo"}) as hub:
        HfApi(endpoint=hub.url, token="hf_test").create_repo("me/model")

Every file is declared "regular" at preupload, so the client sends contents inline (base64) in the
commit and never talks to LFS/xet storage. Like the real Hub, a new repo starts with one empty
"initial commit". Standalone: ``python tests/hub_server.py --port 0 --token T`` prints the URL.
"""

import argparse
import base64
import hashlib
import json
import re
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

# Dataset repos are kept under the key "datasets/user/name", Spaces under "spaces/user/name", models under "user/name".
_KEY = {"models": "", "datasets": "datasets/", "spaces": "spaces/"}
_API_RE = re.compile(r"^/api/(models|datasets|spaces)/([^/]+/[^/]+)(?:/(revision|tree|preupload|commit)/([^/]+)(/.*)?)?$")
_RESOLVE_RE = re.compile(r"^/(datasets/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")
# Verbatim from the real Hub: on https endpoints the client reads any other 401 on a repo URL as
# "repository not found", but this X-Error-Message as a bad token.
_BAD_TOKEN = "Invalid credentials in Authorization header"


class HubError(Exception):
    def __init__(self, status, message, code=None, headers=None):
        super().__init__(message)
        self.status, self.message = status, message
        # Header values must be latin-1; repo paths in messages may not be.
        header_message = message.encode("ascii", "backslashreplace").decode()
        # The client maps X-Error-Code to exception classes (RepoNotFound -> RepositoryNotFoundError...).
        self.headers = {"X-Error-Message": header_message, **(headers or {})}
        if code:
            self.headers["X-Error-Code"] = code


def _json(payload, status=200):
    return status, {"Content-Type": "application/json"}, json.dumps(payload).encode()


def _git_blob_sha1(data):
    # Same oid git (and the Hub) give a regular file: lets the client skip unchanged files.
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _now():
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


class _Repo:
    def __init__(self, private, sdk=None):
        self.private = private
        self.sdk = sdk  # a Space's: gradio, docker, static
        self.created_at = _now()
        self.snapshots = {}  # commit sha -> {path: bytes}
        self.history = []  # commit shas, oldest first
        self.branches = {}
        self.add_commit({})

    def add_commit(self, files, branch="main"):
        sha = secrets.token_hex(20)
        self.snapshots[sha] = files
        self.history.append(sha)
        self.branches[branch] = sha
        return sha

    def resolve(self, revision):
        if revision in self.branches:
            return self.branches[revision]
        if revision in self.snapshots:
            return revision
        raise HubError(404, f"Invalid rev id: {revision}", code="RevisionNotFound")


class HubServer:
    """Threaded HTTP server on 127.0.0.1; starts serving on construction, stops on ``stop()``/exit."""

    def __init__(self, tokens=(), forbidden=(), host="127.0.0.1", port=0):
        self.tokens = frozenset(tokens)
        self.forbidden = frozenset(forbidden)
        self._repos = {}
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer((host, port), _Handler)
        self._httpd.hub = self
        self.url = f"http://{host}:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="hub-server", daemon=True)
        self._thread.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        if self._thread.is_alive():
            self._httpd.shutdown()
        self._httpd.server_close()

    def files(self, repo_id, revision="main"):
        """{path: bytes} of the repo at `revision` (branch or commit sha)."""
        with self._lock:
            repo = self._repos[repo_id]
            return dict(repo.snapshots[repo.resolve(revision)])

    def repos(self):
        with self._lock:
            return sorted(self._repos)

    def sdk(self, repo_id):
        """The SDK a Space repo was created with."""
        with self._lock:
            return self._repos[repo_id].sdk

    def commits(self, repo_id):
        """Commit shas, oldest first; the first is the empty commit made by create_repo."""
        with self._lock:
            return list(self._repos[repo_id].history)

    # -- auth ------------------------------------------------------------------------------------

    def _authenticated(self, auth_header):
        if not auth_header:
            return False
        scheme, _, token = auth_header.partition(" ")
        if scheme.lower() != "bearer" or token.strip() not in self.tokens:
            raise HubError(401, _BAD_TOKEN)
        return True

    def _check_write(self, auth_header, repo_id):
        if not self._authenticated(auth_header):
            raise HubError(401, "Invalid username or password.")
        if repo_id in self.forbidden:
            raise HubError(403, f"You don't have the rights to write to {repo_id}")

    def _readable_repo(self, auth_header, repo_id):
        authenticated = self._authenticated(auth_header)
        repo = self._repos.get(repo_id)
        if repo is None or (repo.private and not authenticated):
            raise HubError(401 if repo else 404, "Repository not found", code="RepoNotFound")
        return repo

    # -- routing ---------------------------------------------------------------------------------

    def _handle(self, method, path, query, body, auth):
        with self._lock:  # requests are tiny; one lock keeps commits atomic w.r.t. reads
            if path == "/api/repos/create" and method == "POST":
                return self._create_repo(json.loads(body or b"{}"), auth)
            if path == "/api/validate-yaml" and method == "POST":
                return _json({"errors": [], "warnings": []})
            if path == "/api/agent-harnesses" and method == "GET":
                # Fetched by the client's user-agent builder unless HF_HUB_DISABLE_TELEMETRY=1.
                return _json({"standardEnvVars": [], "harnesses": {}})
            if m := _RESOLVE_RE.match(path):
                if method in ("GET", "HEAD"):
                    return self._resolve_file((m[1] or "") + m[2], unquote(m[3]), unquote(m[4]), auth)
            elif m := _API_RE.match(path):
                repo_id = _KEY[m[1]] + m[2]
                action, revision = m[3], unquote(m[4] or "main")
                sub_path = unquote(m[5] or "").strip("/")
                if method == "GET" and action in (None, "revision"):
                    return self._model_info(repo_id, revision, auth)
                if method == "GET" and action == "tree":
                    return self._tree(repo_id, revision, sub_path, query.get("recursive") == ["true"], auth)
                if method == "POST" and action == "preupload":
                    return self._preupload(repo_id, revision, json.loads(body), auth)
                if method == "POST" and action == "commit":
                    if "create_pr" in query:
                        raise HubError(400, "Pull requests are not supported by this test server")
                    return self._commit(repo_id, revision, body, auth)
            raise HubError(404, f"{method} {path} is not implemented by the test hub")

    def _create_repo(self, payload, auth):
        if not payload.get("organization"):
            raise HubError(400, "The test hub needs repo ids of the form 'namespace/name'")
        repo_id = f"{payload['organization']}/{payload['name']}"
        repo_id = _KEY[payload.get("type", "model") + "s"] + repo_id
        self._check_write(auth, repo_id)
        url = f"{self.url}/{repo_id}"
        if repo_id in self._repos:
            return _json({"error": "You already created this model repo", "url": url}, status=409)
        self._repos[repo_id] = _Repo(private=payload.get("visibility") == "private", sdk=payload.get("sdk"))
        return _json({"url": url, "name": repo_id, "id": secrets.token_hex(12)})

    def _model_info(self, repo_id, revision, auth):
        repo = self._readable_repo(auth, repo_id)
        sha = repo.resolve(revision)
        files = repo.snapshots[sha]
        siblings = [{"rfilename": p, "size": len(d), "blobId": _git_blob_sha1(d)} for p, d in sorted(files.items())]
        return _json(
            {"_id": repo_id, "id": repo_id.removeprefix("datasets/"), "modelId": repo_id.removeprefix("datasets/"), "sha": sha, "private": repo.private,
             "disabled": False, "gated": False, "downloads": 0, "likes": 0, "tags": [],
             "createdAt": repo.created_at, "lastModified": _now(), "siblings": siblings}
        )

    def _tree(self, repo_id, revision, sub_path, recursive, auth):
        repo = self._readable_repo(auth, repo_id)
        files = repo.snapshots[repo.resolve(revision)]
        prefix = f"{sub_path}/" if sub_path else ""
        entries, folders = [], set()
        for path, data in sorted(files.items()):
            if not path.startswith(prefix):
                continue
            parts = path[len(prefix):].split("/")
            # Recursive listings also name every intermediate folder, as the Hub does.
            for depth in range(1, len(parts) if recursive else min(len(parts), 2)):
                folders.add(prefix + "/".join(parts[:depth]))
            if recursive or len(parts) == 1:
                entries.append({"type": "file", "oid": _git_blob_sha1(data), "size": len(data), "path": path})
        if sub_path and not entries and not folders:
            raise HubError(404, f"{sub_path} does not exist", code="EntryNotFound")
        entries += [{"type": "directory", "oid": hashlib.sha1(f.encode()).hexdigest(), "size": 0, "path": f}
                    for f in sorted(folders)]
        return _json(entries)

    def _preupload(self, repo_id, revision, payload, auth):
        self._check_write(auth, repo_id)
        repo = self._readable_repo(auth, repo_id)
        current = repo.snapshots[repo.resolve(revision)]
        # "regular" for everything, including large/binary files, keeps LFS and xet out of the picture.
        files = [
            {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
             "oid": _git_blob_sha1(current[f["path"]]) if f["path"] in current else None}
            for f in payload["files"]
        ]
        return _json({"files": files, "commitOid": repo.branches.get(revision)})

    def _commit(self, repo_id, revision, body, auth):
        self._check_write(auth, repo_id)
        repo = self._readable_repo(auth, repo_id)
        if revision not in repo.branches:
            raise HubError(404, f"Invalid rev id: {revision}", code="RevisionNotFound")
        files = dict(repo.snapshots[repo.branches[revision]])
        for line in body.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                parent = value.get("parentCommit")
                if parent and parent != repo.branches[revision]:
                    raise HubError(412, f"Parent commit {parent} is not the head of {revision}")
            elif key == "file":
                files[value["path"]] = base64.b64decode(value["content"])
            elif key == "deletedFile":
                if files.pop(value["path"], None) is None:
                    raise HubError(404, "A file with this name doesn't exist", code="EntryNotFound")
            elif key == "deletedFolder":
                folder = value["path"].rstrip("/") + "/"
                files = {p: d for p, d in files.items() if not p.startswith(folder)}
            else:
                raise HubError(400, f"Unsupported commit operation {key!r} (only regular files are accepted)")
        sha = repo.add_commit(files, revision)
        return _json({"success": True, "commitOid": sha, "commitUrl": f"{self.url}/{repo_id}/commit/{sha}",
                      "pullRequestUrl": None})

    def _resolve_file(self, repo_id, revision, filename, auth):
        repo = self._readable_repo(auth, repo_id)
        sha = repo.resolve(revision)
        data = repo.snapshots[sha].get(filename)
        if data is None:
            # X-Repo-Commit lets the client cache the file's absence for this commit.
            raise HubError(404, "Entry not found", code="EntryNotFound", headers={"X-Repo-Commit": sha})
        # No X-Linked-Size / X-Xet-Hash: that is how the client recognises a plain (non-LFS) file.
        headers = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes",
                   "ETag": f'"{_git_blob_sha1(data)}"', "X-Repo-Commit": sha}
        return 200, headers, data


class _Handler(BaseHTTPRequestHandler):
    server_version = "TestHub/1.0"

    def log_message(self, format, *args):
        pass  # keep test output clean; nothing request-derived is ever written out

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def _dispatch(self, method):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        url = urlsplit(self.path)
        try:
            status, headers, payload = self.server.hub._handle(
                method, url.path, parse_qs(url.query), body, self.headers.get("Authorization"))
        except HubError as err:
            status, headers, payload = _json({"error": err.message}, status=err.status)
            headers.update(err.headers)
        except (ValueError, KeyError) as err:  # malformed JSON/NDJSON from a client
            status, headers, payload = _json({"error": f"Bad request: {type(err).__name__}"}, status=400)
        status, headers, payload = _apply_range(self.headers.get("Range"), status, headers, payload)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(payload)


def _apply_range(range_header, status, headers, payload):
    # The client resumes interrupted downloads with "Range: bytes=N-".
    m = re.fullmatch(r"bytes=(\d+)-(\d*)", range_header or "")
    if status != 200 or not m or "ETag" not in headers:
        return status, headers, payload
    start, end = int(m[1]), int(m[2] or len(payload) - 1)
    headers = {**headers, "Content-Range": f"bytes {start}-{end}/{len(payload)}"}
    return 206, headers, payload[start:end + 1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 lets the OS choose")
    parser.add_argument("--token", action="append", default=[], help="valid token (repeatable)")
    parser.add_argument("--forbidden", action="append", default=[], help="repo id no token may write (repeatable)")
    args = parser.parse_args()
    hub = HubServer(tokens=args.token, forbidden=args.forbidden, host=args.host, port=args.port)
    print(hub.url, flush=True)  # so a parent process can read the endpoint from our stdout
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        hub.stop()


if __name__ == "__main__":
    main()
