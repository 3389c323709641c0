"""Start the real ``vacelab ui`` command in a subprocess on a free 127.0.0.1 port (for the UI tests)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_ui(*args: str, timeout: float = 90) -> Iterator[str]:
    """Run ``vacelab ui --port P ARGS...``; yield its URL once it answers; stop it afterwards."""
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "vacelab", "ui", "--port", str(port), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"vacelab ui exited with {proc.returncode}:\n{proc.stdout.read()}")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"vacelab ui did not answer on {url} within {timeout} s")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def call(
    url: str, api_name: str, data: list, *, timeout: float = 120, session: str | None = None
) -> tuple[str, object]:
    """Call one event of the app through Gradio's HTTP API; return ("complete", outputs) or ("error", msg).
    Calls with the same ``session`` share one page session (its state), as a page's events do."""
    request = urllib.request.Request(
        f"{url}gradio_api/call/{api_name}",
        data=json.dumps({"data": data, "session_hash": session}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        event_id = json.loads(response.read())["event_id"]
    with urllib.request.urlopen(f"{url}gradio_api/call/{api_name}/{event_id}", timeout=timeout) as response:
        event = None
        for raw in response:
            line = raw.decode().strip()
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event in ("complete", "error"):
                payload = line.split(":", 1)[1].strip()
                return event, json.loads(payload) if payload and payload != "null" else None
    raise RuntimeError(f"{api_name}: no result")


def upload(url: str, name: str, content: bytes) -> dict:
    """Upload one file the way the page does (multipart POST); return the FileData dict for it."""
    boundary = "vacelab-test-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        f"{url}gradio_api/upload",
        data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        path = json.loads(response.read())[0]
    return {"path": path, "orig_name": name, "meta": {"_type": "gradio.FileData"}}
