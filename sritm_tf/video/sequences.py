"""Image sequences: one file per frame, named by ffmpeg's image2 pattern (`frame_%06d.tif`: a
printf %d or %0Nd for the frame number, %% for a literal %).

Input: .png, .tif/.tiff or .dpx frames (8- or 16-bit SDR R'G'B'), opened with ffmpeg's image2
demuxer through PyAV (`open_sequence`), so that they decode as a video does
(`sources.VideoSource`), at `--fps` (default 25). The numbers on disk must run without a gap:
image2 stops at the first missing number, which would convert part of the sequence silently.

Output: a 16-bit .png or .tif/.tiff sequence (`convert_to_sequence`): BT.2020 R'G'B', PQ (or HLG),
full range, quantised as the still-image output (`imageio.hdr_codes16`); PNG frames carry a
cICP chunk, TIFF frames no colour signalling. Frames are numbered as the input's (from 1, as
ffmpeg's image2 muxer, for a video or an image). Each frame is written atomically, and kept:
a re-run writes only the frames not on disk yet (all of them with `overwrite`).
"""
import os
import re

from sritm_tf import fileio, imageio
from sritm_tf.errors import InputError, MissingFileError, OutputExistsError
from sritm_tf.notes import note
from sritm_tf.video.sources import VideoSource

INPUT_EXTENSIONS = (".png", ".tif", ".tiff", ".dpx")
FORMATS = ("png-sequence", "tiff-sequence")  # of the output (`output_format`)
_OUTPUT_EXTENSIONS = {".png": FORMATS[0], ".tif": FORMATS[1], ".tiff": FORMATS[1]}
_TOKENS = re.compile(r"(%%|%\d*d)")


def _tokens(pattern):
    """The file name of `pattern` split into literal text, "%%" and "%Nd" tokens."""
    return [t for t in _TOKENS.split(os.path.basename(pattern)) if t]


def _is_number(token):
    return token != "%%" and _TOKENS.fullmatch(token) is not None


def _name_regex(pattern):
    """A regular expression for the file names of `pattern`: the number as group 1."""
    return re.compile("".join(r"(\d+)" if _is_number(t) else re.escape("%" if t == "%%" else t)
                              for t in _tokens(pattern)))


def is_pattern(path):
    """True if `path` names an image sequence: its file name holds one frame number (%d or %0Nd),
    and it ends in .png, .tif, .tiff or .dpx."""
    path = os.fspath(path)
    return sum(map(_is_number, _tokens(path))) == 1 and os.path.splitext(path)[1].lower() in INPUT_EXTENSIONS


def frame_name(pattern, number):
    """The file of frame `number` in `pattern`, as ffmpeg's av_get_frame_filename makes it
    (%Nd and %0Nd both zero-padded to N digits)."""
    name = "".join(f"{number:0{t[1:-1] or 0}d}" if _is_number(t) else "%" if t == "%%" else t
                   for t in _tokens(pattern))
    return os.path.join(os.path.dirname(pattern), name)


def numbers_on_disk(pattern):
    """The frame numbers of `pattern` that have a file, sorted."""
    try:
        names = set(os.listdir(os.path.dirname(pattern) or "."))
    except OSError:
        return []
    found = (int(m.group(1)) for m in map(_name_regex(pattern).fullmatch, names) if m)
    return sorted(n for n in found if os.path.basename(frame_name(pattern, n)) in names)


def check_input(pattern):
    """The frame numbers of the input sequence `pattern`: refuses another extension, no file
    and a gap in the numbers (MissingFileError / InputError, one line)."""
    if os.path.splitext(pattern)[1].lower() not in INPUT_EXTENSIONS:
        raise InputError(f"{pattern}: an image sequence is .png, .tif, .tiff or .dpx frames")
    numbers = numbers_on_disk(pattern)
    if not numbers:
        raise MissingFileError(f"{pattern}: no file matches")
    gap = next((a + 1 for a, b in zip(numbers, numbers[1:]) if b != a + 1), None)
    if gap is not None:
        raise InputError(f"{pattern}: frame {os.path.basename(frame_name(pattern, gap))} is missing (the sequence "
                         f"has {len(numbers)} frames from {numbers[0]} to {numbers[-1]}); fill the gap or renumber")
    return numbers


def open_sequence(pattern, frame_rate, allow_truncated=False):
    """The sequence `pattern` as a `sources.VideoSource` at `frame_rate` (a Fraction), through
    ffmpeg's image2 demuxer from its first number on disk (image2 itself searches 0-4 only);
    `start_number` and `frame_count` are the sequence's."""
    numbers = check_input(pattern)
    options = {"framerate": str(frame_rate), "start_number": str(numbers[0]), "pattern_type": "sequence"}
    source = VideoSource(pattern, allow_truncated, format="image2", options=options)
    source.start_number, source.frame_count = numbers[0], len(numbers)
    return source


def output_format(pattern, format=None):
    """The output format of the sequence `pattern`: "png-sequence" or "tiff-sequence", from its
    extension; `format` (--format), if given, must name the same image format."""
    fmt = _OUTPUT_EXTENSIONS.get(os.path.splitext(pattern)[1].lower())
    if fmt is None:
        raise InputError(f"{pattern}: an output image sequence is .png, .tif or .tiff")
    kind = fmt.split("-")[0]
    if format and format.lower() not in (fmt, kind, os.path.splitext(pattern)[1].lower().lstrip(".")):
        raise InputError(f"--format {format}: the output {pattern} is a {kind.upper()} sequence")
    return fmt


def check_output(output, input=None):
    """Refuses an output sequence that would write over the frames of the input sequence."""
    if input is None or not (is_pattern(output) and is_pattern(input)):
        return
    numbers = numbers_on_disk(input)
    first_in, first_out = (frame_name(p, numbers[0]) for p in (input, output)) if numbers else (None, None)
    if first_in and os.path.exists(first_out) and os.path.samefile(first_in, first_out):
        raise OutputExistsError(f"{output}: is the input sequence; write the frames to another folder or name")


class Resumed:
    """The frames of `source` whose file in the output sequence `pattern` is not on disk yet (all of
    them with `overwrite`), as (rgb, frame number): the i-th frame is number `start_number` + i
    (the source's, else 1). The frames skipped are dropped here, before any conversion."""

    def __init__(self, source, pattern, overwrite=False):
        self.source, self.pattern = source, pattern
        self.path, self.frame_rate, self.time_base = source.path, source.frame_rate, source.time_base
        self.start = getattr(source, "start_number", 1)
        self.existing = set() if overwrite else set(numbers_on_disk(pattern))
        count = source.frame_count
        self.frame_count = count and count - len(self.existing.intersection(range(self.start, self.start + count)))
        self.skipped = 0

    def __iter__(self):
        total = 0
        for total, (rgb, _) in enumerate(self.source, 1):
            number = self.start + total - 1
            if number in self.existing:
                self.skipped += 1
            else:
                yield rgb, number
        if self.skipped:
            note(f"{self.pattern}: {self.skipped} of {total} frames exist: skipped (--overwrite rewrites them)")


class SequenceWriter:
    """Writes each converted frame to its own 16-bit file of `pattern` (`write(signal, number)`),
    atomically: a run killed leaves whole frames only. Dead runs' temporaries are removed first."""

    def __init__(self, pattern, transfer="pq"):
        self.pattern, self.transfer = pattern, transfer
        self.png = os.path.splitext(pattern)[1].lower() == ".png"
        folder, frames = os.path.dirname(os.path.abspath(pattern)), _name_regex(pattern)
        for name in os.listdir(folder):  # once, not for each frame: a killed run's `.part-<pid>-<frame>`
            if fileio.is_temporary(name) and frames.fullmatch(name.split("-", 2)[2]):
                fileio.remove_stale(os.path.join(folder, name.split("-", 2)[2]))
        if not self.png:
            note(f"{pattern}: TIFF has no colour signalling: the frames are BT.2020 {transfer.upper()} "
                 "R'G'B', full range, untagged")

    def write(self, signal, number):
        data = (imageio.encode_hdr_png(signal, self.transfer) if self.png
                else imageio.encode_image(imageio.hdr_codes16(signal), ".tif"))
        with fileio.atomic_path(frame_name(self.pattern, number), stale=False) as tmp, open(tmp, "wb") as f:
            f.write(data)

    def close(self):
        pass

    def abort(self):
        pass  # the frames written are whole and kept: a re-run resumes after them


def convert_to_sequence(source, pattern, convert, encode, size, overwrite=False, progress=True):
    """Converts the frames of `source` not written yet (`Resumed`) with `convert` (a
    `convert.FrameConverter`, making frames of `size` (w, h)) into the output sequence `pattern`,
    through `encode` (`convert.encode_frames`). Returns `convert.convert_video`'s dict, with skipped
    (frames on disk already); max_cll / max_fall are of the frames written by this run (PQ only)."""
    frames = Resumed(source, pattern, overwrite)
    written, levels = encode(frames, SequenceWriter(pattern, convert.transfer), convert, progress,
                             desc=os.path.basename(source.path))
    result = {"frames": written, "skipped": frames.skipped,
              "width": size[0], "height": size[1]}
    if levels is not None and written:
        result.update(max_cll=levels.max_cll, max_fall=levels.max_fall)
    if getattr(source, "truncated", None):
        result["truncated"] = source.truncated
    return result
