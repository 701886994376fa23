"""Boxes added to the video sample entry of a finished MP4 / QuickTime file (`add_video_boxes`):
the HDR10 static metadata boxes 'mdcv' and 'clli' (`hdr10_boxes`), which ffmpeg's mov muxer writes
only from stream side data that its command line cannot set.

Box structure: ISO/IEC 14496-12 4.2 (32-bit size, or 1 then a 64-bit size, or 0: to the end of
the file); the visual sample entry (8.5.2.2) has 78 bytes of fields before its child boxes; chunk
offsets are in 'stco' (32-bit) and 'co64' (64-bit) tables (8.7.5). The same layout is QuickTime's.
"""
import os
import shutil
import struct

from sritm_tf import fileio
from sritm_tf.errors import ToolError

#: Boxes that hold only boxes, on the way from 'moov' to a track's sample description.
_PARENTS = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}
_VISUAL_ENTRY_FIELDS = 78


def box(kind, payload):
    """One box: 32-bit size, four-character `kind`, `payload`."""
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def hdr10_boxes(mastering_payload, light_payload):
    """The 'mdcv' (mastering display colour volume) and 'clli' (content light level) boxes, whose
    payloads are those of the HEVC SEI messages (H.265 D.2.28 and D.2.35): display primaries G, B,
    R and white point in units of 0.00002, luminance max and min in units of 0.0001 cd/m2; MaxCLL
    and MaxFALL in cd/m2 (the 'mdcv' and 'clli' boxes of ISO/IEC 14496-12:2022 and of Apple's QuickTime)."""
    return box(b"mdcv", mastering_payload) + box(b"clli", light_payload)


def _children(data, start=0):
    """(kind, offset, header size, size) of the boxes in data[start:]."""
    while start + 8 <= len(data):
        size, kind = struct.unpack_from(">I4s", data, start)
        header = 8
        if size == 1:
            size, header = struct.unpack_from(">Q", data, start + 8)[0], 16
        elif size == 0:
            size = len(data) - start
        if size < header:
            raise ValueError(f"box {kind!r} of size {size}")
        yield kind, start, header, size
        start += size


def _edit(kind, payload, extra, shift, video=False):
    """The payload of box `kind` with `extra` boxes added to (replacing those of the same kinds
    in) the first sample entry of each video track, and its chunk offsets moved by `shift`."""
    if kind in _PARENTS:
        boxes = [(k, payload[o + h:o + s]) for k, o, h, s in _children(payload)]
        if kind == b"mdia":  # hdlr: version and flags, pre_defined, then the handler type
            video = any(k == b"hdlr" and p[8:12] == b"vide" for k, p in boxes)
        return b"".join(box(k, _edit(k, p, extra, shift, video)) for k, p in boxes)
    if kind == b"stsd" and video:
        entries = list(_children(payload, 8))  # version and flags, entry_count, then the entries
        entry_kind, offset, header, size = entries[0]
        fields_end = offset + header + _VISUAL_ENTRY_FIELDS
        kinds = {k for k, *_ in _children(extra)}
        kept = b"".join(payload[o:o + s] for k, o, _, s in _children(payload[:offset + size], fields_end)
                        if k not in kinds)
        first = box(entry_kind, payload[offset + header:fields_end] + kept + extra)
        return payload[:8] + first + payload[offset + size:]
    if kind in (b"stco", b"co64") and shift:
        width = "I" if kind == b"stco" else "Q"
        count = struct.unpack_from(">I", payload, 4)[0]
        offsets = [o + shift for o in struct.unpack_from(f">{count}{width}", payload, 8)]
        if kind == b"stco" and offsets and max(offsets) >= 1 << 32:
            raise ValueError("a chunk offset passes 4 GiB")
        return payload[:8] + struct.pack(f">{count}{width}", *offsets)
    return payload


def _top_level(path):
    """(kind, offset, size) of the top-level boxes of file `path`."""
    boxes, offset, end = [], 0, os.path.getsize(path)
    with open(path, "rb") as f:
        while offset + 8 <= end:
            f.seek(offset)
            size, kind = struct.unpack(">I4s", f.read(8))
            if size == 1:
                size = struct.unpack(">Q", f.read(8))[0]
            elif size == 0:
                size = end - offset
            if size < 8:
                break
            boxes.append((kind, offset, size))
            offset += size
    return boxes


def add_video_boxes(path, extra, name=None):
    """Adds the boxes `extra` (bytes) to the first sample entry of each video track of the MP4 /
    QuickTime file `path`, in place of any of the same kinds. With 'moov' last (ffmpeg's default)
    the file is rewritten from 'moov' on; with 'moov' before the media data ('faststart'), the
    chunk offsets move by the growth of 'moov' and the file is copied once."""
    path, name = os.fspath(path), os.fspath(name or path)
    top = _top_level(path)
    moov = next(((offset, size) for kind, offset, size in top if kind == b"moov"), None)
    if moov is None:
        raise ToolError(f"{name}: no 'moov' box to write the HDR10 metadata into")
    offset, size = moov
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read(size)
    header = 16 if struct.unpack_from(">I", data)[0] == 1 else 8
    try:
        grown = len(_edit(b"moov", data[header:], extra, 0)) + 8 - size
        media_after = any(kind == b"mdat" and o > offset for kind, o, _ in top)
        new = box(b"moov", _edit(b"moov", data[header:], extra, grown if media_after else 0))
    except (ValueError, IndexError, struct.error) as err:
        raise ToolError(f"{name}: cannot add the HDR10 metadata boxes to its 'moov' ({err})") from None
    if offset + size == os.path.getsize(path):
        with open(path, "r+b") as f:
            f.seek(offset)
            f.write(new)
            f.truncate()
        return
    copy = fileio.temporary_path(path, "boxes")
    try:
        with open(path, "rb") as src, open(copy, "wb") as dst:
            left = offset
            while left > 0:  # the boxes before 'moov'
                left -= dst.write(src.read(min(left, 1 << 24))) or left
            dst.write(new)
            src.seek(offset + size)
            shutil.copyfileobj(src, dst, 1 << 24)
        os.replace(copy, path)
    finally:
        fileio.remove(copy)

