"""Interlaced sources: which are (`parity`: the stream's field order, the first frame's interlaced
flag, or the user's --field-order), and their deinterlacing by FFmpeg's bwdif filter
("Bob Weaver", libavfilter) through PyAV's filter graph (`Deinterlacer`): one progressive frame
per frame (--deinterlace frame), or one per field at twice the rate (--deinterlace field).
"""
from sritm_tf.errors import InputError
from sritm_tf.notes import note

FIELD_ORDERS = ("auto", "tff", "bff", "progressive")
MODES = ("frame", "field")
#: FFmpeg's AVFieldOrder codes of interlaced streams: TT and TB top field first, BB and BT bottom
#: field first (the first letter: the field shown first, as FFmpeg's muxers and encoders use them).
FIELD_ORDER_NAMES = {2: "top field first", 4: "top field first", 3: "bottom field first", 5: "bottom field first"}
PARITY_NAMES = {"tff": "top field first", "bff": "bottom field first", "auto": "field order of each frame"}


def check(field_order, mode):
    """Refuses a --field-order or --deinterlace value that is not one of theirs."""
    if field_order not in FIELD_ORDERS:
        raise InputError(f"--field-order: expected one of {', '.join(FIELD_ORDERS)}, got {field_order!r}")
    if mode not in MODES:
        raise InputError(f"--deinterlace: expected one of {', '.join(MODES)}, got {mode!r}")


def parity(tags, field_order="auto"):
    """bwdif's parity for a stream (`colorimetry.stream_tags`): "tff" or "bff" (the stream's
    field order, or `field_order` as the user gives it), "auto" (interlaced frames in a stream
    of unknown field order: each frame's flag), or None (progressive: no deinterlacing)."""
    if field_order != "auto":
        return None if field_order == "progressive" else field_order
    if tags["field_order"] in FIELD_ORDER_NAMES:
        return "tff" if FIELD_ORDER_NAMES[tags["field_order"]].startswith("top") else "bff"
    return "auto" if tags["interlaced"] else None


def tell(path, tags, field_order, chosen, per_field, rate):
    """Notes how an interlaced source (or one the user says is) is shown: `chosen` (`parity`)
    and the output `rate` (frames/s), or that --field-order progressive leaves it as it is."""
    interlaced = tags["field_order"] in FIELD_ORDER_NAMES or tags["interlaced"]
    if chosen is None:
        if interlaced:
            note(f"{path}: interlaced, not deinterlaced (--field-order progressive)")
        return
    why = f"--field-order {field_order}" if field_order != "auto" else "interlaced"
    note(f"{path}: {why} ({PARITY_NAMES[chosen]}): deinterlaced with bwdif, {float(rate):.4g} frames/s"
         + (" (one per field)" if per_field else ""))


class Deinterlacer:
    """FFmpeg's bwdif (libavfilter, PyAV's av.filter.Graph) on decoded frames: `push` a frame,
    `flush` at the end; each returns the progressive frames ready, as (frame, pts): one per frame
    with its pts in the stream's `time_base`, or with `per_field` one per field, pts in half of it
    (the second field halfway to the next frame). `chosen`: bwdif's parity (`parity`)."""

    def __init__(self, chosen, per_field, time_base):
        self.options = f"mode={'send_field' if per_field else 'send_frame'}:parity={chosen}:deint=all"
        self.time_base = time_base / 2 if per_field else time_base
        self.graph = None

    def _configure(self, frame):
        import av

        self.graph = av.filter.Graph()
        source = self.graph.add_buffer(width=frame.width, height=frame.height, format=frame.format,
                                       time_base=frame.time_base or self.time_base)
        bwdif = self.graph.add("bwdif", self.options)
        sink = self.graph.add("buffersink")
        source.link_to(bwdif)
        bwdif.link_to(sink)
        self.graph.configure()

    def push(self, frame):
        if self.graph is None:
            self._configure(frame)
        self.graph.vpush(frame)
        return self._ready()

    def flush(self):
        if self.graph is None:
            return []
        self.graph.vpush(None)
        return self._ready()

    def _ready(self):
        import av

        ready = []
        while True:
            try:
                frame = self.graph.vpull()
            except (av.BlockingIOError, av.error.EOFError):
                return ready
            pts = None if frame.pts is None else round(frame.pts * frame.time_base / self.time_base)
            ready.append((frame, pts))
