"""A Matroska file (RFC 9559; EBML, RFC 8794) joined in place, segment by segment, for `sritm
convert-batch`: each segment's HEVC stream (and the source's audio of its time range) is remuxed by
ffmpeg to live Matroska in memory (`mkv_segment_chunk`, `segment_audio`), and its Clusters are
appended to the title's file (`mkv_join_start`, `mkv_join_append`); `mkv_join_finish` writes the
Cues, the Segment's size, the SeekHead and the Duration in place. The join's state is a small JSON
dict, so that a killed join continues where its state says.
"""
import hashlib
import os
import struct
import subprocess
from fractions import Fraction

from sritm_tf import fileio
from sritm_tf.errors import ToolError
from sritm_tf.video.probe import require

# Matroska element IDs (RFC 9559; EBML, RFC 8794), marker bits included.
EBML_HEADER, SEGMENT, SEEK_HEAD, SEEK, SEEK_ID, SEEK_POSITION = 0x1A45DFA3, 0x18538067, 0x114D9B74, 0x4DBB, 0x53AB, 0x53AC
INFO, TIMESTAMP_SCALE, DURATION, TRACKS, TAGS = 0x1549A966, 0x2AD7B1, 0x4489, 0x1654AE6B, 0x1254C367
TRACK_ENTRY, TRACK_NUMBER, TRACK_TYPE, DEFAULT_DURATION, CODEC_PRIVATE = 0xAE, 0xD7, 0x83, 0x23E383, 0x63A2
CLUSTER, TIMESTAMP, SIMPLE_BLOCK, BLOCK_GROUP, BLOCK, REFERENCE_BLOCK = 0x1F43B675, 0xE7, 0xA3, 0xA0, 0xA1, 0xFB
CUES, CUE_POINT, CUE_TIME, CUE_TRACK_POSITIONS, CUE_TRACK, CUE_CLUSTER_POSITION = (0x1C53BB6B, 0xBB, 0xB3, 0xB7, 0xF7,
                                                                                  0xF1)
VOID = 0xEC
#: Bytes kept before Info for the SeekHead (4 entries: 89 bytes), written when the join is finished.
SEEK_HEAD_ROOM = 128


def _vint(data, i):
    """(value, length) of the EBML variable-size integer at data[i] (RFC 8794 section 4); value None
    for the reserved all-ones value (an element of unknown size)."""
    length = 9 - data[i].bit_length()
    if length > 8:
        raise ValueError("not an EBML variable-size integer")
    value = int.from_bytes(data[i:i + length], "big") & ((1 << 7 * length) - 1)
    return (None if value == (1 << 7 * length) - 1 else value), length


def _elements(data, start=0, end=None):
    """(id, payload start, payload end) of the EBML elements in data[start:end], in order; an
    element of unknown size runs to `end`. ValueError for an element that runs past `end`."""
    end = len(data) if end is None else end
    while start < end:
        id_length = 9 - data[start].bit_length()
        size, size_length = _vint(data, start + id_length)
        body = start + id_length + size_length
        stop = end if size is None else body + size
        if id_length > 4 or stop > end:
            raise ValueError(f"a damaged or truncated element at byte {start}")
        yield int.from_bytes(data[start:start + id_length], "big"), body, stop
        start = stop


def _element(element_id, payload, size_length=8):
    """An EBML element: its ID, its size (a `size_length`-byte variable-size integer), `payload`."""
    size = (1 << 7 * size_length | len(payload)).to_bytes(size_length, "big")
    return element_id.to_bytes((element_id.bit_length() + 7) // 8, "big") + size + payload


def _uint(element_id, value):
    return _element(element_id, value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"), 1)


def _void(length):
    """A Void element exactly `length` (>= 2) bytes long."""
    return _element(VOID, bytes(length - 2), 1) if length - 2 < 127 else _element(VOID, bytes(length - 9))


def _children(data, start, end):
    return {element_id: (body, stop) for element_id, body, stop in _elements(data, start, end)}


def _live_matroska(chunk, name):
    """(head, clusters): the EBML header and the Segment's elements before its first Cluster as
    {id: (start, end)} (with "ebml" and "first cluster" offsets), and the Cluster spans, of a
    Matroska stream that ffmpeg wrote to a pipe."""
    try:
        top = list(_elements(chunk))
        if len(top) < 2 or top[0][0] != EBML_HEADER or top[1][0] != SEGMENT:
            raise ValueError("no EBML header and Segment")
        head, clusters = {"ebml": (0, top[0][2])}, []
        for element_id, body, stop in _elements(chunk, top[1][1], top[1][2]):
            if element_id == CLUSTER:
                clusters.append((body, stop))
            elif not clusters:
                head[element_id] = (body, stop)
    except ValueError as err:
        raise ToolError(f"{name}: ffmpeg wrote a Matroska segment this join cannot read ({err})") from None
    return head, clusters


def _video_track(chunk, tracks):
    """(track number, default frame duration in ns or 0, CodecPrivate) of the video track in Tracks."""
    for element_id, body, stop in _elements(chunk, *tracks):
        if element_id == TRACK_ENTRY:
            entry = _children(chunk, body, stop)
            value = lambda key, default=0: int.from_bytes(chunk[slice(*entry[key])], "big") if key in entry else default
            if value(TRACK_TYPE) == 1:
                private = chunk[slice(*entry[CODEC_PRIVATE])] if CODEC_PRIVATE in entry else b""
                return value(TRACK_NUMBER), value(DEFAULT_DURATION), private
    raise ToolError("the joined segment has no video track")


def mkv_segment_chunk(segment, offset, audio=None, audio_offset=0, name=None):
    """One segment of a title as live Matroska (RFC 9559), in memory: ffmpeg copies the HEVC
    stream of `segment` (`hdr10.HevcWriter`'s NUT) with its first frame at `offset` seconds (Fraction:
    the source timestamp's place in the output, as `concat.join_segments` places it), and the audio of
    `audio` (`segment_audio`'s NUT, first packet at `audio_offset` seconds), streams copied."""
    require("ffmpeg")
    seconds = lambda t: f"{round(Fraction(t) * 1_000_000) / 1_000_000:.6f}"
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-itsoffset", seconds(offset), "-i", os.fspath(segment)]
    cmd += ["-itsoffset", seconds(audio_offset), "-i", os.fspath(audio), "-map", "0:v:0", "-map", "1:a"] if audio \
        else ["-map", "0:v:0"]
    proc = subprocess.run(cmd + ["-c", "copy", "-f", "matroska", "pipe:1"], capture_output=True)
    if proc.returncode:
        detail = "; ".join(line.strip() for line in proc.stderr.decode(errors="replace").splitlines() if line.strip())
        raise ToolError(f"{name or segment}: ffmpeg failed to remux a segment: {detail[-2000:] or proc.returncode}")
    return proc.stdout


def segment_audio(source, start, end, path):
    """Copies the audio packets of `source` whose time is in [`start`, `end`) seconds (None: open
    ended) to `path` (NUT, streams copied), time as ffmpeg places it in an output: the packet's
    timestamp less the file's start. Each packet lands in exactly one segment, so that the joined
    title has the source's audio once. Returns the time of the first packet written; None (and no
    file) if there is none."""
    import av

    first = None
    with av.open(os.fspath(source), metadata_errors="replace") as src:
        streams = list(src.streams.audio)
        if not streams:
            return None
        origin = Fraction(src.start_time or 0, 1_000_000)  # AV_TIME_BASE
        if start is not None:  # from a second before: the demuxer's seek lands on a packet at or before it
            src.seek(max(0, int((start + origin - 1) * 1_000_000)), backward=True)
        with av.open(os.fspath(path), "w", format="nut") as dst:
            out = {s.index: dst.add_stream_from_template(s) for s in streams}
            done = set()
            for packet in src.demux(*streams):
                if packet.pts is None or packet.size == 0:
                    continue
                time = packet.pts * packet.time_base - origin
                if end is not None and time >= end + 1:  # the demuxer's order is by dts: a margin
                    done.add(packet.stream.index)
                    if len(done) == len(streams):
                        break
                if (start is not None and time < start) or (end is not None and time >= end):
                    continue
                first = time if first is None else min(first, time)
                packet.stream = out[packet.stream.index]
                dst.mux(packet)
    if first is None:
        fileio.remove(path)
    return first


def mkv_join_start(path, chunk, name=None):
    """Starts the Matroska file `path` that segments are appended to (`mkv_join_append`), from the
    first segment's `mkv_segment_chunk`: its EBML header, a Segment of unknown size, room for the
    SeekHead, Info (with a Duration to fill in), Tracks and Tags. Returns the join's state (JSON)."""
    head, _ = _live_matroska(chunk, name or path)
    if INFO not in head or TRACKS not in head:
        raise ToolError(f"{name or path}: ffmpeg's Matroska segment has no Info or Tracks")
    info = b"".join(chunk[start:stop] for element_id, start, stop in _elements_with_headers(chunk, *head[INFO])
                    if element_id != DURATION)
    scale = _children(chunk, *head[INFO]).get(TIMESTAMP_SCALE)
    scale = int.from_bytes(chunk[slice(*scale)], "big") if scale else 1_000_000
    track, frame_ns, private = _video_track(chunk, head[TRACKS])
    parts = [chunk[slice(*head["ebml"])], SEGMENT.to_bytes(4, "big") + b"\x01" + b"\xff" * 7]
    segment = sum(map(len, parts))
    state = {"segment": segment, "seek_head": segment, "cues": [], "end": None, "scale": scale,
             "frame": frame_ns / scale, "track": track, "private": hashlib.sha256(private).hexdigest()}
    parts.append(_void(SEEK_HEAD_ROOM))
    state["info"] = sum(map(len, parts)) - segment
    info_element = _element(INFO, info + _element(DURATION, struct.pack(">d", 0.0), 1))
    state["duration"] = sum(map(len, parts)) + len(info_element) - 8
    parts.append(info_element)
    state["tracks"] = sum(map(len, parts)) - segment
    parts.append(_element(TRACKS, chunk[slice(*head[TRACKS])]))
    if TAGS in head:
        state["tags"] = sum(map(len, parts)) - segment
        parts.append(_element(TAGS, chunk[slice(*head[TAGS])]))
    with open(path, "wb") as f:
        f.write(b"".join(parts))
    state["length"] = sum(map(len, parts))
    return state


def _elements_with_headers(data, start, end):
    """As `_elements`, but each span includes the element's ID and size."""
    begin = start
    for element_id, body, stop in _elements(data, start, end):
        yield element_id, begin, stop
        begin = stop


def mkv_join_append(path, chunk, state, name=None, shift=0):
    """Appends the Clusters of `chunk` (a later segment's `mkv_segment_chunk`, whose video track
    must be the first's) to `path` at `state["length"]` (what a killed append left after it is cut
    off), each `shift` (TimestampScale units) later, and notes its keyframes for the Cues. Returns
    the new state; `path` is synced to disk."""
    name = name or path
    head, clusters = _live_matroska(chunk, name)
    track, _, private = _video_track(chunk, head[TRACKS])
    if (track, hashlib.sha256(private).hexdigest()) != (state["track"], state["private"]):
        raise ToolError(f"{name}: a segment's HEVC parameter sets differ from the first segment's; cannot join")
    state = dict(state, cues=list(state["cues"]))
    with open(path, "r+b") as f:
        f.truncate(state["length"])
        f.seek(state["length"])
        for body, stop in clusters:
            position = f.tell() - state["segment"]
            base = 0
            payload = chunk[body:stop]
            for element_id, start, end in _elements(chunk, body, stop):
                if element_id == TIMESTAMP:
                    base = int.from_bytes(chunk[start:end], "big") + shift
                    if shift:  # the Cluster's Timestamp, its first child (RFC 9559 5.1.3.1), moved
                        payload = _uint(TIMESTAMP, base) + chunk[end:stop]
                elif element_id in (SIMPLE_BLOCK, BLOCK_GROUP):
                    block = (start, end) if element_id == SIMPLE_BLOCK else _children(chunk, start, end).get(BLOCK)
                    if block is None:
                        continue
                    number, length = _vint(chunk, block[0])
                    time = base + struct.unpack(">h", chunk[block[0] + length:block[0] + length + 2])[0]
                    state["end"] = time if state["end"] is None else max(state["end"], time)
                    key = (chunk[block[0] + length + 2] & 0x80 if element_id == SIMPLE_BLOCK
                           else REFERENCE_BLOCK not in _children(chunk, start, end))
                    if number == track and key:
                        state["cues"].append([time, position])
            f.write(_element(CLUSTER, payload))
        f.flush()
        os.fsync(f.fileno())
        state["length"] = f.tell()
    return state


def mkv_join_finish(path, state):
    """Finishes the Matroska file of `mkv_join_start` / `mkv_join_append` in place: appends the
    Cues (a CuePoint per video keyframe), and writes the SeekHead, the Segment's size and the
    Duration (the last frame's time plus a frame). Repeatable: what a killed finish wrote is
    written again."""
    cues = b"".join(_element(CUE_POINT, _uint(CUE_TIME, time) + _element(
        CUE_TRACK_POSITIONS, _uint(CUE_TRACK, state["track"]) + _uint(CUE_CLUSTER_POSITION, position)))
        for time, position in state["cues"])
    entries = [(INFO, state["info"]), (TRACKS, state["tracks"]), (CUES, state["length"] - state["segment"])]
    entries += [(TAGS, state["tags"])] if "tags" in state else []
    seek = lambda element_id, position: _element(SEEK, _element(SEEK_ID, element_id.to_bytes(4, "big"), 1)
                                                 + _element(SEEK_POSITION, position.to_bytes(8, "big"), 1), 1)
    seek_head = _element(SEEK_HEAD, b"".join(seek(*entry) for entry in entries), 1)
    with open(path, "r+b") as f:
        f.truncate(state["length"])
        f.seek(state["length"])
        f.write(_element(CUES, cues))
        size = f.tell() - state["segment"]
        f.seek(state["segment"] - 8)
        f.write((1 << 56 | size).to_bytes(8, "big"))
        f.seek(state["seek_head"])
        f.write(seek_head + _void(SEEK_HEAD_ROOM - len(seek_head)))
        f.seek(state["duration"])
        f.write(struct.pack(">d", float((state["end"] or 0) + state["frame"])))
        f.flush()
        os.fsync(f.fileno())
