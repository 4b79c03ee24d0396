"""A local server that speaks the Hugging Face hub's file protocol, for download tests (no network needed).

What huggingface_hub 2.4 asks of a hub, read from its source: `GET /api/models/{repo}/revision/{rev}?blobs=true`
(model info: `sha`, `siblings` with `rfilename`, `size`, `blobId`, `lfs`), `HEAD`/`GET /{repo}/resolve/{rev}/{file}`
answered with `X-Repo-Commit`, `ETag` (the git blob id) or, for LFS files, `X-Linked-Etag` (sha256) and
`X-Linked-Size`, `Content-Length`, and `Range` requests answered 206 with `Content-Range`. Failures carry the
`X-Error-Code` header hf_raise_for_status maps: RepoNotFound, RevisionNotFound, EntryNotFound (404) and GatedRepo
(401, as the hub answers for a gated model's files; the model info stays public).

Test knobs: `gated` repos, `drop` (file -> bytes: the first GET of that file is cut after so many bytes, the
connection closed mid-body, once), `throttle` (seconds slept per 64 KiB sent), and what was served: `sent`
(bytes per file) and `requests` (method, path, Range header).

    python hub_server.py --repo tiny/phi=samples/models/tiny-phi [--gated owner/name] [--throttle 0.002]

prints one JSON line `{"url": "http://127.0.0.1:PORT"}` once it listens, then serves until killed.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import socket
import sys
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")
PIECE = 64 * 1024


class Blob:
    def __init__(self, path: Path) -> None:
        data = path.read_bytes()
        self.path, self.size = path, len(data)
        self.oid = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # git's blob id
        self.lfs = path.name.endswith(LFS_SUFFIXES)
        self.sha256 = hashlib.sha256(data).hexdigest() if self.lfs else None

    @property
    def etag(self) -> str:
        return self.sha256 or self.oid


class Repo:
    def __init__(self, repo_id: str, folder: Path) -> None:
        self.id = repo_id
        self.files: Dict[str, Blob] = {p.relative_to(folder).as_posix(): Blob(p)
                                       for p in sorted(folder.rglob("*")) if p.is_file()}
        tree = "".join(f"{name} {blob.oid}\n" for name, blob in self.files.items())
        self.commit = hashlib.sha1(f"{repo_id}\n{tree}".encode()).hexdigest()

    def info(self, gated: bool) -> dict:
        siblings = []
        for name, blob in self.files.items():
            entry = {"rfilename": name, "size": blob.size, "blobId": blob.oid}
            if blob.lfs:
                entry["lfs"] = {"sha256": blob.sha256, "size": blob.size, "pointerSize": 134}
            siblings.append(entry)
        return {"_id": self.commit[:24], "id": self.id, "modelId": self.id, "sha": self.commit, "private": False,
                "gated": "manual" if gated else False, "disabled": False, "siblings": siblings}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that left mid-body: a cancelled pull
            super().handle_error(request, client_address)


class HubServer:
    """A hub on 127.0.0.1 (a free port) serving model folders; start() / stop(), or a context manager."""

    def __init__(self, repos: Dict[str, Path], *, gated: Iterable[str] = (), drop: Optional[Dict[str, int]] = None,
                 throttle: float = 0.0) -> None:
        self.repos = {repo_id: Repo(repo_id, Path(folder)) for repo_id, folder in repos.items()}
        self.gated = set(gated)
        self.drop = dict(drop or {})
        self.throttle = throttle
        self.sent: Dict[str, int] = defaultdict(int)
        self.requests: List[Tuple[str, str, Optional[str]]] = []
        self.lock = threading.Lock()
        self.httpd = _Server(("127.0.0.1", 0), _handler(self))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread: Optional[threading.Thread] = None

    def start(self) -> "HubServer":
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> "HubServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def ranges(self, file: str) -> List[Optional[str]]:
        """The Range header of every GET of `file` (None: the whole file)."""
        return [r for method, path, r in self.requests if method == "GET" and path.endswith("/" + file)]


def _handler(hub: HubServer) -> type:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # quiet: tests read `hub.requests`
            pass

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def do_GET(self) -> None:
            self._serve(body=True)

        def _serve(self, body: bool) -> None:
            path = unquote(urlsplit(self.path).path)
            with hub.lock:
                hub.requests.append((self.command, path, self.headers.get("Range")))
            info = re.fullmatch(r"/api/models/(.+)/revision/([^/]+)", path)
            if info:
                return self._info(info.group(1), info.group(2))
            resolve = re.fullmatch(r"/(.+?)/resolve/([^/]+)/(.+)", path)
            if resolve:
                return self._resolve(*resolve.groups(), body=body)
            self._error(404, None, "not a hub route")

        def _repo(self, repo_id: str, rev: str) -> Optional[Repo]:
            repo = hub.repos.get(repo_id)
            if repo is None:
                self._error(404, "RepoNotFound", "Repository not found")
            elif rev not in ("main", repo.commit):
                self._error(404, "RevisionNotFound", "Invalid rev id: " + rev)
            else:
                return repo
            return None

        def _info(self, repo_id: str, rev: str) -> None:
            repo = self._repo(repo_id, rev)
            if repo is None:
                return
            data = json.dumps(repo.info(repo_id in hub.gated)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _resolve(self, repo_id: str, rev: str, name: str, body: bool) -> None:
            repo = self._repo(repo_id, rev)
            if repo is None:
                return
            if repo_id in hub.gated:
                return self._error(401, "GatedRepo", f"Access to model {repo_id} is restricted. You must have access "
                                   "to it and be authenticated to access it. Please log in.")
            blob = repo.files.get(name)
            if blob is None:
                return self._error(404, "EntryNotFound", f"{name} does not exist on \"{rev}\"", repo.commit)
            start, end = 0, blob.size - 1
            asked = self.headers.get("Range")
            if asked:
                m = re.fullmatch(r"bytes=(\d+)-(\d*)", asked.strip())
                if not m or int(m.group(1)) >= blob.size:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{blob.size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                start, end = int(m.group(1)), min(int(m.group(2) or end), end)
            self.send_response(206 if asked else 200)
            self.send_header("X-Repo-Commit", repo.commit)
            self.send_header("ETag", f'"{blob.etag}"')
            if blob.lfs:
                self.send_header("X-Linked-Etag", f'"{blob.sha256}"')
                self.send_header("X-Linked-Size", str(blob.size))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Type", "application/octet-stream")
            if asked:
                self.send_header("Content-Range", f"bytes {start}-{end}/{blob.size}")
            self.send_header("Content-Length", str(end - start + 1))
            self.end_headers()
            if body:
                self._body(name, blob.path.read_bytes()[start:end + 1])

        def _body(self, name: str, data: bytes) -> None:
            with hub.lock:
                cut = hub.drop.pop(name, None)  # once
            for offset in range(0, len(data), PIECE):
                piece = data[offset:offset + PIECE]
                if cut is not None:
                    piece = piece[:max(0, cut - offset)]
                self.wfile.write(piece)
                with hub.lock:
                    hub.sent[name] += len(piece)
                if cut is not None and offset + len(piece) >= cut:
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)  # the peer sees the body end early
                    self.close_connection = True
                    return
                if hub.throttle:
                    time.sleep(hub.throttle)

        def _error(self, status: int, code: Optional[str], message: str, commit: Optional[str] = None) -> None:
            data = json.dumps({"error": message}).encode()
            self.send_response(status)
            if code:
                self.send_header("X-Error-Code", code)
            self.send_header("X-Error-Message", message)
            if commit:
                self.send_header("X-Repo-Commit", commit)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

    return Handler


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description="a local Hugging Face hub for tests")
    parser.add_argument("--repo", action="append", default=[], help="owner/name=folder (repeatable)")
    parser.add_argument("--gated", action="append", default=[], help="owner/name answered 401 GatedRepo")
    parser.add_argument("--throttle", type=float, default=0.0, help="seconds slept per 64 KiB sent")
    args = parser.parse_args(argv)
    repos = dict(item.split("=", 1) for item in args.repo)
    for repo_id, folder in repos.items():
        if not (Path(folder) / "config.json").is_file():
            sys.exit(f"hub_server: {folder} is not a model folder (for tiny-phi: python3 samples/models/"
                     "make_tiny_phi.py)")
    hub = HubServer({k: Path(v) for k, v in repos.items()}, gated=args.gated, throttle=args.throttle).start()
    print(json.dumps({"url": hub.url}), flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        hub.stop()


if __name__ == "__main__":
    main()
