"""What `sritm` depends on fails: a full disk (a real tmpfs, and ENOSPC injected at each
writer), an encoder that fails, a model server that is missing, silent or not TF Serving.
Each is one stderr line naming the output or the server, exit status 2, and nothing left
behind.
"""
import contextlib
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from tests.helpers.media import make_clip
from tests.helpers.processes import (assert_one_error_line, assert_refused, python_env, sritm,
                                     sritm_reporting_tensorflow)


# ---------------------------------------------------------------------------
# A full disk: a real one (tmpfs), and ENOSPC at the image write, the raw video write and in ffmpeg
# ---------------------------------------------------------------------------
@pytest.fixture
def full_disk(tmp_path):
    """A 64 KiB tmpfs (a real ENOSPC from every writer: Python, PyAV, ffmpeg); skips where mounting is not
    allowed (not root, or no CAP_SYS_ADMIN in a container)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["o.png", "o.mp4", "o.yuv"])
def test_full_disk_is_one_line_and_leaves_nothing(full_disk, clip, tmp_path, name):
    from sritm_tf.pretrained import sample_path

    if name.endswith(".mp4"):  # streamed into x265, so what fills the disk is the HEVC stream: noise, 320x180
        source = make_clip(tmp_path / "noise.mp4", 8, "160x90", 25, "-vf", "noise=alls=80:allf=t")
    else:  # a 480x272 PNG; 8 raw frames of 128x72: > 64 KiB
        source = sample_path() if name.endswith(".png") else clip
    result = sritm("convert", source, "-o", full_disk / name, "--baseline", "--quiet")
    line = assert_one_error_line(result, "convert", full_disk / name)
    assert line.endswith(f"{full_disk / name}: no space left on device")
    assert os.listdir(full_disk) == []


# Python's writes to sritm's temporaries (`fileio.temporary_path`: ".part-<pid>-<name>") write half, then
# fail with ENOSPC, leaving a partial file to clean up.
FULL_AT_WRITE = """
import builtins, errno, io, os

class _Full(io.FileIO):
    def write(self, data):
        super().write(bytes(data)[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

_open = builtins.open

def _open_full(file, mode="r", *args, **kwargs):
    if "w" in mode and os.path.basename(os.fspath(file)).startswith(".part-"):
        return _Full(file, "wb")
    return _open(file, mode, *args, **kwargs)

builtins.open = _open_full
"""


# ffmpeg itself writes to /dev/full: a real ENOSPC from the encoder (at the header for MP4, at the trailer
# for Matroska, where ffmpeg 5.1 still exits 0).
FULL_IN_FFMPEG = """
import subprocess

_Popen = subprocess.Popen

class _PopenFull(_Popen):
    def __init__(self, cmd, *args, **kwargs):
        if cmd and cmd[0] == "ffmpeg" and "-i" in cmd:  # an encode, not a query such as -encoders
            cmd = [*cmd[:-1], "/dev/full"]
        super().__init__(cmd, *args, **kwargs)

subprocess.Popen = _PopenFull
"""


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
@pytest.mark.parametrize("source, output, prelude", [
    ("img.png", "o.png", FULL_AT_WRITE), ("clip.mp4", "o.yuv", FULL_AT_WRITE),
    ("clip.mp4", "o.mp4", FULL_IN_FFMPEG), ("clip.mp4", "o.mkv", FULL_IN_FFMPEG)])
def test_full_disk_is_one_line(inputs, folders, source, output, prelude):
    out, tmp = folders
    result = sritm_reporting_tensorflow("convert", inputs / source, "-o", out / output, "--baseline", "--quiet", tmp=tmp, prelude=prelude)
    line = assert_refused(result, "convert", out / output, before_tensorflow=False)
    assert line.endswith(f"{out / output}: no space left on device")
    assert os.listdir(out) == [] and os.listdir(tmp) == []


# ---------------------------------------------------------------------------
# The encoder fails
# ---------------------------------------------------------------------------
def test_encoder_error_names_the_output_not_the_temporary(tmp_path, clip, monkeypatch):
    from sritm_tf import convert
    from sritm_tf.errors import ToolError
    from sritm_tf.video import hdr10

    monkeypatch.setattr(hdr10, "check_encoder", lambda *args: None)  # as if x265 dropped a preset we list
    output = tmp_path / "o.mp4"
    with pytest.raises(ToolError) as raised:
        convert.convert_video(clip, output, baseline=True, progress=False, preset="fastest")
    message = str(raised.value)
    assert message.startswith(f"{output}: ffmpeg failed") and ".part" not in message and "\n" not in message
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------
# serve-client without the serving extra, against silent or foreign servers
# ---------------------------------------------------------------------------
@pytest.fixture
def sdr_png(tmp_path):
    import cv2

    path = tmp_path / "sdr.png"
    cv2.imwrite(str(path), np.full((4, 6, 3), 128, np.uint8))
    return path


@pytest.fixture
def silent_server():
    """(port, connect to it): a socket on 127.0.0.1 that takes connections (the
    kernel's backlog) but never reads or answers; with one connection queued, its
    backlog of 0 is full and further connections hang in the handshake."""
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    held = []

    def fill_backlog():
        try:
            held.append(socket.create_connection(server.getsockname(), timeout=1))
        except TimeoutError:
            pass  # full already

    yield server.getsockname()[1], fill_backlog
    for sock in held + [server]:
        sock.close()


@pytest.mark.slow
def test_serve_client_grpc_without_the_serving_extra(tmp_path, sdr_png):
    block = ("import sys; sys.modules['grpc'] = sys.modules['tensorflow_serving'] = None; "
             "from sritm_tf.cli import main; sys.exit(main(sys.argv[1:]))")
    env = python_env()
    result = subprocess.run([sys.executable, "-c", block, "serve-client", str(sdr_png), "-o", str(tmp_path / "o.png"),
                             "--protocol", "grpc", "--port", "1"], capture_output=True, text=True, env=env,
                            timeout=120)
    assert_one_error_line(result, "serve-client", "--protocol grpc", 'pip install "sritm_tf[serving]"')
    assert sorted(os.listdir(tmp_path)) == ["sdr.png"]


@pytest.mark.slow
def test_serve_client_against_a_server_that_never_answers(tmp_path, sdr_png, silent_server):
    import time

    port, _ = silent_server
    start = time.monotonic()
    result = sritm("serve-client", sdr_png, "-o", tmp_path / "o.png", "--host", "127.0.0.1", "--port", port,
                   "--timeout", 1, timeout=60)
    assert_one_error_line(result, "serve-client", f"http://127.0.0.1:{port}/", "no answer within 1 s")
    assert time.monotonic() - start < 30  # not the default 300 s
    assert sorted(os.listdir(tmp_path)) == ["sdr.png"]


def test_rest_and_grpc_connect_timeouts(silent_server):
    import time

    from sritm_tf.serving_client import grpc_predict, rest_predict, rest_url

    port, fill_backlog = silent_server
    batch = np.zeros((1, 4, 6, 3), np.uint8)
    start = time.monotonic()
    with pytest.raises(RuntimeError, match=r"^http://127\.0\.0\.1:\d+/v1/models/sritm:predict: no answer within 0\.5 s$"):
        rest_predict(batch, rest_url("127.0.0.1", port), "rgb8_to_pq16", timeout=0.5, connect_timeout=0.5)
    fill_backlog()
    with pytest.raises(RuntimeError, match=r"^http://127\.0\.0\.1:\d+/v1/models/sritm:predict: no connection within 0\.5 s$"):
        rest_predict(batch, rest_url("127.0.0.1", port), "rgb8_to_pq16", timeout=60, connect_timeout=0.5)
    with pytest.raises(RuntimeError, match=rf"^127\.0\.0\.1:{port}: no connection within 0\.5 s$"):
        grpc_predict(batch, f"127.0.0.1:{port}", signature_name="rgb8_to_pq16", timeout=60, connect_timeout=0.5)
    assert time.monotonic() - start < 10


@contextlib.contextmanager
def foreign_server(status):
    """The port of an HTTP server on 127.0.0.1 that is not TF Serving: every POST gets
    `status` and an HTML page, as from a proxy."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    page = b"<html>\n<head><title>Bad Gateway</title></head>\n<body>\n<h1>nginx</h1>\n</body>\n</html>\n"

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(status)
            for key, value in (("Content-Type", "text/html; charset=utf-8"), ("Content-Length", len(page))):
                self.send_header(key, str(value))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args):
            pass

    with ThreadingHTTPServer(("127.0.0.1", 0), Handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield server.server_address[1]
        finally:
            server.shutdown()


@pytest.mark.slow
def test_serve_client_against_an_html_error_page(tmp_path, sdr_png):
    with foreign_server(502) as port:
        result = sritm("serve-client", sdr_png, "-o", tmp_path / "o.png", "--host", "127.0.0.1",
                       "--port", port, "--timeout", 30, timeout=60)
    line = assert_one_error_line(result, "serve-client", f"127.0.0.1:{port}", "HTTP 502", "Bad Gateway")
    assert "<" not in line and sorted(os.listdir(tmp_path)) == ["sdr.png"]

    from sritm_tf.serving_client import rest_predict, rest_url

    with foreign_server(200) as port:  # a 200 that is not JSON
        with pytest.raises(RuntimeError, match="not a TF Serving predict answer"):
            rest_predict(np.zeros((1, 4, 6, 3), np.uint8), rest_url("127.0.0.1", port), "rgb8_to_pq16")
