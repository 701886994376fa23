"""Small synthetic clips made with ffmpeg, and what ffprobe reads back from them."""
import subprocess
from fractions import Fraction


def ffmpeg(*args):
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *map(str, args)], check=True)


def make_clip(path, frames=8, size="64x36", rate=25, *extra):
    """`frames` frames of testsrc, H.264 8-bit yuv420p, no audio; `extra`: more ffmpeg output options."""
    ffmpeg("-f", "lavfi", "-i", f"testsrc=size={size}:rate={rate}", "-frames:v", frames, "-c:v", "libx264",
           "-pix_fmt", "yuv420p", *extra, path)
    return path


def packet_times(path):
    """(presentation times of the video packets in seconds, sorted, as Fractions; the stream's time base)."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "stream=time_base:packet=pts", "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True, check=True).stdout.split()
    time_base = Fraction(next(v for v in out if "/" in v))
    return sorted(int(v) * time_base for v in out if "/" not in v), time_base
