"""Video files, one job per module; import the one you need (`from sritm_tf.video import hdr10`):

- `probe`: the first video stream of a file (PyAV), the truncation check, `require` (a tool on PATH);
- `colorimetry`: a stream's colour tags, the refusal of HDR ones, frames to BT.709 R'G'B' (8 to 16 bits, SD primaries);
- `deinterlace`: interlaced sources: field order, bwdif through PyAV's filter graph;
- `sources`: frame sources: SDR video (`VideoSource`, `VideoSegment`), raw yuv420p (`YuvSource`), a still image;
- `geometry`: display rotation, anamorphic sample aspect ratio and the output size (`--size`);
- `hdr10`: HDR10 writers (raw yuv420p10le, NUT, HEVC Main10 through x265), SEI, `write_light_levels`;
- `concat`: segments joined by ffmpeg's concat demuxer (`sritm convert-batch`'s mp4 output);
- `matroska`: a Matroska file joined in place, segment by segment (`sritm convert-batch`'s mkv output).
"""
