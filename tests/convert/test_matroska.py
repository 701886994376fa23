"""The in-place Matroska join of `sritm convert-batch` (`sritm_tf.video.matroska`), without Beam: tiny
HEVC segments made by `HevcWriter` are joined as the batch join does (`mkv_join_start`, then
`mkv_join_append` per segment, then `mkv_join_finish`) and read back by ffprobe and PyAV."""
import json
import os
import shutil
import subprocess
from fractions import Fraction

import numpy as np
import pytest

from sritm_tf.errors import ToolError
from sritm_tf.video import hdr10, matroska

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")

WIDTH, HEIGHT, FPS, PER_SEGMENT, SEGMENTS = 64, 48, 25, 5, 3  # 15 frames, 0.6 s
TIME_BASE = Fraction(1, FPS)
CLUSTER_ID = bytes.fromhex("1F43B675")


def encode(path, pts, width=WIDTH, height=HEIGHT):
    """A segment as the batch writes it: HevcWriter's NUT, frames at their source timestamps."""
    writer = hdr10.HevcWriter(path, width, height, Fraction(FPS), TIME_BASE, "nut", 28, "ultrafast")
    for t in pts:
        writer.write(np.full((height, width, 3), 0.1 + 0.02 * t, np.float32), t)
    writer.close()
    return path


def place(k):
    """Seconds from the file's start to segment k's first frame (the batch join's `_place`)."""
    return Fraction(PER_SEGMENT * k, FPS)


@pytest.fixture(scope="module")
def audio_source(tmp_path_factory):
    """0.6 s of PCM audio (no encoder priming: its first packet is at 0)."""
    path = tmp_path_factory.mktemp("audio") / "tone.mkv"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=8000",
                    "-t", "0.6", "-c:a", "pcm_s16le", str(path)], check=True)
    return path


@pytest.fixture(scope="module")
def chunks(tmp_path_factory, audio_source):
    """Each segment with the source's audio of its time range, remuxed to live Matroska."""
    folder = tmp_path_factory.mktemp("segments")
    result = []
    for k in range(SEGMENTS):
        segment = encode(folder / f"seg{k}.nut", range(PER_SEGMENT * k, PER_SEGMENT * (k + 1)))
        audio = folder / f"audio{k}.nut"
        end = place(k + 1) if k + 1 < SEGMENTS else None
        first = matroska.segment_audio(audio_source, None if k == 0 else place(k), end, audio)
        assert first is not None and first >= 0
        result.append(matroska.mkv_segment_chunk(segment, place(k), audio, first))
    return result


def join(path, chunks):
    """The batch join: the file is started from the first segment, then every segment is appended."""
    state = matroska.mkv_join_start(path, chunks[0])
    for chunk in chunks:
        state = matroska.mkv_join_append(path, chunk, state)
    return state


def ffprobe(path, *args):
    out = subprocess.run(["ffprobe", "-v", "error", "-of", "json", *args, str(path)], capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out)


def test_joined_segments_are_one_file_with_the_source_timestamps_cues_and_duration(chunks, audio_source,
                                                                                   tmp_path):
    import av

    path = tmp_path / "joined.mkv"
    state = join(path, chunks)
    matroska.mkv_join_finish(path, state)

    info = ffprobe(path, "-count_frames", "-show_entries",
                   "format=duration:stream=codec_type,codec_name,profile,pix_fmt,color_transfer,nb_read_frames")
    video, audio = info["streams"]
    assert (video["codec_type"], video["codec_name"], video["profile"], video["pix_fmt"]) == (
        "video", "hevc", "Main 10", "yuv420p10le")
    assert video["color_transfer"] == "smpte2084" and int(video["nb_read_frames"]) == PER_SEGMENT * SEGMENTS
    assert float(info["format"]["duration"]) == pytest.approx(0.6)  # the last frame's time plus a frame
    packets = ffprobe(path, "-select_streams", "v", "-show_entries", "packet=pts_time,flags")["packets"]
    assert sorted(float(p["pts_time"]) for p in packets) == pytest.approx([i / FPS for i in range(15)])
    assert [float(p["pts_time"]) for p in packets if "K" in p["flags"]] == pytest.approx([0.0, 0.2, 0.4])

    # The source's audio, every packet once, in order.
    source = ffprobe(audio_source, "-show_entries", "packet=pts_time")["packets"]
    joined = ffprobe(path, "-select_streams", "a", "-show_entries", "packet=pts_time")["packets"]
    assert [float(p["pts_time"]) for p in joined] == pytest.approx([float(p["pts_time"]) for p in source])
    assert audio["codec_name"] == "pcm_s16le"

    # Every frame decodes.
    decoded = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "null", "-"],
                             capture_output=True, text=True)
    assert decoded.returncode == 0 and decoded.stderr == ""

    # The Cues: a seek to the start reads them (a scan would index only the first Cluster), one entry per
    # keyframe, each at a Cluster.
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        container.seek(0, stream=stream)
        entries = [(e.timestamp, e.pos) for e in stream.index_entries]
    assert entries == [(time, state["segment"] + position) for time, position in state["cues"]]
    assert [time for time, _ in entries] == [0, 200, 400]  # ms: TimestampScale 1 ms
    data = path.read_bytes()
    assert all(data[pos:pos + 4] == CLUSTER_ID for _, pos in entries)


def test_a_cut_off_append_and_a_repeated_finish_leave_the_same_file(chunks, tmp_path):
    reference = tmp_path / "reference.mkv"
    matroska.mkv_join_finish(reference, join(reference, chunks))

    path = tmp_path / "resumed.mkv"
    state = join(path, chunks[:2])
    matroska.mkv_join_append(path, chunks[2], state)  # appended, but its state never recorded (killed)
    with open(path, "ab") as f:
        f.write(b"\x1f\x43\xb6\x75 a killed append's partial Cluster")
    state = matroska.mkv_join_append(path, chunks[2], state)  # the re-run, from the recorded state
    matroska.mkv_join_finish(path, state)
    matroska.mkv_join_finish(path, state)  # a finish killed after it wrote: written again
    assert path.read_bytes() == reference.read_bytes()


def test_a_segment_with_other_parameter_sets_is_refused(chunks, tmp_path):
    other = encode(tmp_path / "other.nut", range(PER_SEGMENT, 2 * PER_SEGMENT), width=2 * WIDTH)
    path = tmp_path / "joined.mkv"
    state = join(path, chunks[:1])
    size = os.path.getsize(path)
    with pytest.raises(ToolError, match="parameter sets differ"):
        matroska.mkv_join_append(path, matroska.mkv_segment_chunk(other, place(1)), state, name="title.mkv")
    assert os.path.getsize(path) == size == state["length"]
