"""`sritm convert-batch`: a catalogue of images and videos converted in parallel on Apache Beam.

The units of work are an image, or a segment of a video: videos are cut at the keyframes of
their packet index (demuxed, not decoded) into segments of about `segment_seconds`
(`plan.plan_title`). Each segment is decoded from its keyframe (`video.sources.VideoSegment`),
converted and encoded on its own (`convert.encode_frames` into a `video.hdr10.HevcWriter` with the
title's encoder settings, as NUT; raw yuv420p10le for .yuv) and written atomically into the title's
work folder, `OUT_DIR/.sritm-work/<name>-<key>/seg-<index>-<first pts>-<end pts>.nut`, with
its frame count and light levels beside it (`.json`, written last: a segment is finished when
its .json is there). Segments are joined in order as they finish, without re-encoding (`join`).

<key> hashes the input's absolute path, size and modification time with the conversion
settings: a re-run with the same inputs and settings converts only the segments a killed run
did not finish, and skips the titles whose output exists; a title's work under another key is
removed. A video whose packet index shows it truncated or damaged is refused while planning.
One run per OUT_DIR (`plan.output_lock`); files under OUT_DIR are not inputs. The model is loaded once per worker
(`pipeline.ConvertUnit.setup`). An input that cannot be converted (`SritmError`: damaged, HDR
already, ...) is recorded in its work folder (`error.txt`), told as it happens and the title's other segments
skipped, while the rest converts; other exceptions fail the element, which the runner retries.

Inputs and OUT_DIR must be on a file system every worker sees (local on DirectRunner; NFS or a
GCS FUSE mount on a cluster), and for mkv and yuv output one whose `flock` locks hold across
workers (local, NFSv4, Filestore; not GCS FUSE): the join's lock.

Modules: `plan` (the inputs, their keys and segments: what is left to convert), `join` (a title's
work folder and its join, segment by segment), `pipeline` (the Beam pipeline: `convert_batch`).
Only `pipeline` imports Apache Beam. docs/catalogue_join.md describes the join.
"""
