"""The Apache Beam pipeline of `sritm convert-batch` (`convert_batch`): the only module of
`sritm_tf.batch` that imports Beam. The DoFns convert a unit (`ConvertUnit`) and join a title
(`JoinTitle`); see `sritm_tf.batch`.
"""
import contextlib
import json
import logging
import os
import threading
import time

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from sritm_tf import convert, fileio, imageio
from sritm_tf.batch import join, plan
from sritm_tf.errors import SritmError
from sritm_tf.video import geometry, hdr10, sources


class ConvertUnit(beam.DoFn):
    """Converts one unit, (title, segment index) or (image title, None); the model is loaded
    once per worker, in `setup`. A segment of a title that failed already (its error.txt) is
    not converted. Yields (work folder, segment index). `driver`: the pid of the process that
    runs the pipeline, for DirectRunner's worker processes to exit with it (`exit_with_driver`)."""

    def __init__(self, settings, driver=None):
        self.settings, self.driver = settings, driver

    def setup(self):
        if self.driver is not None:
            exit_with_driver(self.driver)
        self.convert = convert.FrameConverter(**{k: self.settings[k] for k in plan.CONVERTER_KEYS})

    def process(self, unit):
        title, index = unit
        if os.path.exists(os.path.join(title["work"], "error.txt")):  # another segment failed: not joined
            yield title["work"], index
            return
        try:
            with convert.disk_full_is_one_line(title["output"]):
                if index is None:
                    rgb = imageio.read_sdr_image(title["input"])
                    width, height, _ = geometry.output_size(rgb.shape[1], rgb.shape[0], 1, self.settings["scale"],
                                                            self.settings["size"])
                    signal = geometry.resize(self.convert(rgb), (width, height))
                    imageio.write_hdr_png(title["output"], signal, self.settings["transfer"])
                else:
                    self.segment(title, index)
        except SritmError as err:  # the option it may name is sritm convert's
            join.record_error(title, str(err).replace("; --allow-truncated", "; sritm convert --allow-truncated"))
        yield title["work"], index

    def segment(self, title, index):
        s = self.settings
        path = join.segment_path(title, index, s["format"])
        if os.path.exists(path + ".json") or index < join.joined_segments(title):  # done by an earlier attempt
            join.join_ready(title, s["format"])
            return
        os.makedirs(title["work"], exist_ok=True)
        start, end = title["segments"][index]
        source = sources.VideoSegment(geometry.oriented(plan.video_source(title["input"], s)), start, end)
        size = title["width"], title["height"]  # upright, square pixels (`plan.plan_title`)
        with fileio.atomic_path(path) as tmp:
            if s["format"] == "yuv":
                writer = hdr10.Yuv420p10Writer(tmp, title["width"], title["height"])
            else:
                writer = hdr10.HevcWriter(tmp, title["width"], title["height"], title["frame_rate"],
                                          title["time_base"], "nut", s["crf"], s["preset"], name=title["output"],
                                          transfer=s["transfer"])
            frames, levels = convert.encode_frames(source, writer, geometry.Resized(self.convert, size), progress=False)
        light = None if levels is None else [levels.peak, levels.frame_average]
        fileio.write_text(path + ".json", json.dumps({"frames": frames, "pid": os.getpid(), "levels": light}))
        join.join_ready(title, s["format"])  # this segment and those after it that wait, if it was the next one


class JoinTitle(beam.DoFn):
    """(work folder, {"titles": [video title], "units": [converted units]}) -> the title joined,
    unless one of its units failed (its error.txt is there)."""

    def __init__(self, format):
        self.format = format

    def process(self, item):
        for title in item[1]["titles"]:
            if os.path.exists(os.path.join(title["work"], "error.txt")) or not os.path.exists(title["work"]):
                continue  # failed, or joined by an earlier attempt of this element
            try:
                join.join_title(title, self.format)
            except SritmError as err:
                join.record_error(title, str(err))
        return []


def _parent_of(pid):
    """The parent pid of process `pid` (Linux: /proc/PID/stat, its 4th field), or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _under(driver):
    """Whether `driver` is this process's parent, or its parent's (DirectRunner starts a worker through `sh -c`)."""
    parent = os.getppid()
    return driver in (parent, _parent_of(parent))


_watching = []


def exit_with_driver(driver, every=0.5):
    """In a worker process that `driver` started (DirectRunner's multi_processing), a daemon thread
    ends the process (`os._exit`) within `every` seconds once `driver` has died: a SIGKILL'd
    driver's workers are reparented at once, while Beam's workers wait for their gRPC channel to
    time out. Nothing in the driver's own process or in a worker it did not start (another runner's)."""
    if _watching or driver == os.getpid() or not _under(driver):
        return
    _watching.append(driver)

    def watch():
        while _under(driver):
            time.sleep(every)
        os._exit(1)

    threading.Thread(target=watch, name="sritm-exit-with-driver", daemon=True).start()


@contextlib.contextmanager
def failures_told(titles, on_failure, every=0.5):
    """While the block runs, calls `on_failure(input, message)` once for each title whose work folder
    gets an error.txt (`join.record_error`: a segment or image failed), polling every `every` seconds,
    and once more at the end; yields the set of the inputs told."""
    told, stop = set(), threading.Event()

    def poll():
        for title in titles:
            if title["input"] not in told:
                with contextlib.suppress(FileNotFoundError):
                    with open(os.path.join(title["work"], "error.txt")) as f:
                        message = f.read().strip()
                    told.add(title["input"])
                    on_failure(title["input"], message)

    def run():
        while not stop.wait(every):
            poll()

    thread = threading.Thread(target=run, name="sritm-failures", daemon=True)
    if on_failure is not None:
        thread.start()
    try:
        yield told
    finally:
        stop.set()
        if on_failure is not None:
            thread.join()
            poll()


def pipeline_options(runner, workers, beam_args):
    """Beam's options: `runner`, then for the DirectRunner `workers` processes (threads for 1),
    then `beam_args` (--name=value), which may override them."""
    args = [f"--runner={runner}"]
    if runner in ("DirectRunner", "direct"):
        mode = "multi_processing" if workers > 1 else "in_memory"
        args += [f"--direct_num_workers={workers}", f"--direct_running_mode={mode}",
                 "--default_sdk_harness_log_level=ERROR"]
    return PipelineOptions(args + list(beam_args))

def run_pipeline(titles, units, settings, runner="DirectRunner", workers=None, beam_args=()):
    """Converts `units` and joins the video `titles` on Beam (see `sritm_tf.batch`)."""
    workers = workers or os.cpu_count() or 1
    logging.getLogger("apache_beam").setLevel(logging.ERROR)
    local = runner in ("DirectRunner", "direct") and workers > 1  # worker processes this one starts
    with beam.Pipeline(options=pipeline_options(runner, workers, beam_args)) as p:
        done = (p | "Units" >> beam.Create(units, reshuffle=False) | beam.Reshuffle()
                | beam.ParDo(ConvertUnit(settings, os.getpid() if local else None)))
        videos = p | "Titles" >> beam.Create([(t["work"], t) for t in titles if t["kind"] == "video"])
        _ = {"titles": videos, "units": done} | beam.CoGroupByKey() | beam.ParDo(JoinTitle(settings["format"]))


def convert_batch(inputs, out_dir, runner="DirectRunner", workers=None, beam_args=(), overwrite=False,
                  on_failure=None, **options):
    """Converts images (to .png) and videos (to .mkv, .mp4 or .yuv) into `out_dir`, in parallel
    on Apache Beam (see `sritm_tf.batch`).

    Args:
        inputs: files, folders and globs (`plan.find_inputs`).
        out_dir: the output folder (made if missing); outputs are `out_dir/<name>.<ext>`.
        runner: Beam's runner; `workers` (default: the CPU count) is DirectRunner's processes.
        beam_args: more Beam pipeline options, "--name=value".
        overwrite: convert titles whose output exists (default: skip them).
        on_failure: called as on_failure(input, message) as soon as a title fails in a worker.
        options: `plan.batch_settings`'.

    Returns:
        The report of `plan.plan`, with done (outputs written) and failed completed, and told (the
        inputs passed to `on_failure`).
    Raises UserError if another run holds `out_dir` (`plan.output_lock`).
    """
    settings = plan.batch_settings(**options)
    with plan.output_lock(out_dir):
        titles, units, report = plan.plan(inputs, out_dir, settings, overwrite)
        report["told"] = []
        if titles:
            with failures_told(titles, on_failure) as told:
                run_pipeline(titles, units, settings, runner, workers, beam_args)
            report["told"] = sorted(told)
        return _finish(titles, report, out_dir)


def _finish(titles, report, out_dir):
    """`report` completed with the titles done and failed; the empty .sritm-work removed."""
    for title in titles:
        error = os.path.join(title["work"], "error.txt")
        if os.path.exists(error):
            with open(error) as f:
                report["failed"].append((title["input"], f.read().strip()))
        elif os.path.exists(title["output"]) and (title["kind"] == "image" or not os.path.exists(title["work"])):
            report["done"].append(title["output"])
            fileio.remove(title["work"])  # an image's, left by an earlier failure
        else:
            report["failed"].append((title["input"], f"{title['input']}: not finished (see the runner's log)"))
    report["failed"].sort()
    with_work = os.path.join(out_dir, plan.WORK)
    if os.path.isdir(with_work) and not os.listdir(with_work):
        os.rmdir(with_work)
    return report
