"""Video files, one job per module; import the one you need (`from sritm_tf.video import hdr10`):

- `probe`: the first video stream of a file (PyAV), the SDR and truncation checks, `require` (a tool on PATH);
- `sources`: frame sources: SDR video (`VideoSource`, `VideoSegment`), raw yuv420p (`YuvSource`), a still image;
- `hdr10`: HDR10 writers (raw yuv420p10le, NUT, HEVC Main10 through x265), SEI, `write_light_levels`;
- `concat`: segments joined by ffmpeg's concat demuxer (`sritm convert-batch`'s mp4 output);
- `matroska`: a Matroska file joined in place, segment by segment (`sritm convert-batch`'s mkv output).
"""
