"""`sritm train`: train Deep SR-ITM (both stages of the paper), fine-tune it, or train it on synthetic pairs.

    sritm train DATA_DIR --scale 2 --pretrain-steps N --steps M -o RUN
    sritm train RUN/config.yaml [--steps M ...]          # a saved config; flags override
    sritm train --init WEIGHTS --pairs DIR -o RUN        # fine-tune to a few graded pairs
    sritm train DATA_X4 --scale 4 --stage full --init deep_sritm_x2.npz   # x4 started from x2
    sritm train DATA_DIR --recipe paper --skip bicubic    # the authors' recipe and network
    sritm train --synthetic SCENES --val-scenes VAL_SCENES --scale 2 --minutes 5 -o RUN
                                                          # pairs made on the fly (the bundled weights)
"""
import argparse
import math
import numbers
import os
import re

from sritm_tf.errors import InputError, UserError
from sritm_tf.fileio import check_folder_output

# Fine-tuning defaults (with --pairs): a few minutes on a CPU with the full network; the right quarter of
# each pair is held out and scored every checkpoint, the best weights kept (`sritm_tf.train.finetune`).
FINETUNE_DEFAULTS = {"stage": "full", "steps": 150, "lr": 2e-5, "batch_size": 4, "patch_size": 48,
                     "crops": 256, "checkpoint_every": 25}
# With --synthetic (`sritm_tf.train.synthetic.train_synthetic`).
SYNTHETIC_DEFAULTS = {"scale": 2, "minutes": 5.0, "batch_size": 16, "patch_size": 48, "lr": 2e-4,
                      "epoch_steps": 250, "precision": "bf16", "seed": 1, "channels": 64, "m": 3, "n": 10}
# Options of the records / pairs trainer only, and of --synthetic only (argparse dests).
RECORDS_ONLY = ("source", "stage", "recipe", "pretrain_steps", "steps", "pretrain_lr", "skip", "white_nits",
                "chroma_gate", "shadow_gate", "checkpoint_every", "shuffle_buffer", "mixed_precision", "val_pairs",
                "val_records", "val_crop", "pairs", "crops", "anchor", "overwrite", "grade")
SYNTHETIC_ONLY = ("val_scenes", "minutes", "epoch_steps", "workers", "graphics_prob", "teacher", "teacher_share",
                  "teacher_reuse")


def register(subparsers):
    p = subparsers.add_parser("train", help="train (or fine-tune) the network",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("source", nargs="?",
                   help="folder of training records (sritm prepare), or a config.yaml to run again")
    p.add_argument("-o", "--output", help="output folder (default runs/sritm; needed with --synthetic)")
    p.add_argument("--stage", choices=["pretrain", "full", "both"],
                   help="pre-training without modulation, the full network, or both in turn (default both)")
    p.add_argument("--recipe", choices=["ours", "paper"],
                   help="ours (default): Adam lr 1e-4, MSE, Glorot-uniform init, random flips and rotations; "
                        "paper: the authors' train_base_net.m / train_full_net.m (Adam eps 1e-8, biases at 0.1x the "
                        "rate, L2 decay 5e-4 on kernels, 0.5 x summed squared error, Xavier-normal init, no "
                        "augmentation, lr 5e-7 then 1e-7 / 1e-8 / 1e-9 over the reference's epochs)")
    p.add_argument("--pretrain-steps", type=int,
                   help="stage 1 steps (default 20000; --recipe paper: 200 epochs of the records)")
    p.add_argument("--steps", type=int,
                   help="stage 2 steps (default 20000; fine-tuning 150; --recipe paper: 270 epochs of the records)")
    p.add_argument("--batch-size", type=int, help="global batch size (default 16; fine-tuning 4)")
    p.add_argument("--patch-size", type=int,
                   help="LR patch side in pixels: random crop of each record (default: whole record; "
                        "fine-tuning and --synthetic 48)")
    p.add_argument("--lr", type=float,
                   help="Adam learning rate of stage 2 (default 1e-4; fine-tuning 2e-5; --recipe paper: 1e-7, "
                        "divided by 10 and 100 for the last 20 of its 270 epochs; --synthetic: 2e-4, the peak of "
                        "its cosine over --minutes)")
    p.add_argument("--pretrain-lr", type=float,
                   help="Adam learning rate of stage 1 (default 1e-4; --recipe paper: 5e-7)")
    p.add_argument("--scale", type=int, choices=[2, 4], help="upscaling factor (default 2)")
    p.add_argument("--channels", type=int, help="feature channels (default 64)")
    p.add_argument("--m", type=int, help="base/detail block pairs (default 3)")
    p.add_argument("--n", type=int, help="fusion ResBlocks (default 10)")
    p.add_argument("--skip", choices=["classical", "bicubic"],
                   help="residual over the classical BT.2408 conversion (default) or over bicubic (the paper's Eq. 12)")
    p.add_argument("--white-nits", type=float,
                   help="SDR white of the classical skip in cd/m2 (default 203; fine-tuning: the grade's white)")
    p.add_argument("--chroma-gate", type=float, metavar="C0",
                   help="c0 of the classical skip's chroma gate (default 4/255, or the --init network's; 0: none)")
    p.add_argument("--shadow-gate", type=float, metavar="Y0",
                   help="y0 of the classical skip's shadow gate, a fraction of SDR white (default 0.001, or the "
                        "--init network's; 0: none)")
    p.add_argument("--checkpoint-every", type=int, help="steps between checkpoints and validations (default 500)")
    p.add_argument("--seed", type=int, help="random seed (default 0; --synthetic 1)")
    p.add_argument("--shuffle-buffer", type=int, help="records in the shuffle buffer (default 2048)")
    p.add_argument("--mixed-precision", action="store_true", default=None, help="mixed_float16 compute (GPUs)")
    p.add_argument("--precision", choices=["auto", "bf16", "fp32"],
                   help="compute precision (default auto: bf16 where the CPU has bfloat16 units or the GPU is of "
                        "compute capability 8.0+; --synthetic: bf16); "
                        "weights are saved as float32 either way")
    p.add_argument("--val-pairs", help="folder of *_sdr.* / *_hdr.* HR pairs for validation")
    p.add_argument("--val-records", help="held-out records for validation")
    p.add_argument("--val-crop", type=int, help="centre crop of validation pairs in LR pixels, 0 = whole (default 256)")
    p.add_argument("--init", help="start from these weights (.keras, .weights.h5, .npz; --synthetic: .npz, "
                                  "layers matched by name and shape)")
    p.add_argument("--pairs", help="fine-tune on the graded pairs of this folder (with --init)")
    p.add_argument("--grade", metavar="GRADE_JSON",
                   help="the SDR white of the classical skip from this sritm calibrate file (an explicit --white-nits "
                        "wins); fine-tuning without it (or --white-nits) calibrates on the pairs first; either way "
                        "it writes RUN/grade.json for sritm convert --grade")
    p.add_argument("--crops", type=int, help="fine-tuning: random crops taken from the pairs (default 256)")
    p.add_argument("--anchor", action=argparse.BooleanOptionalAction, default=None,
                   help="fine-tuning: where the pairs show nothing (SDR codes outside the middle 99%% of theirs, "
                        "say highlights a frame lacks), keep the --init network's output (default on)")
    p.add_argument("--overwrite", action="store_true", default=None, help="replace a finished run in -o")
    synthetic = p.add_argument_group("training on synthetic pairs (the bundled weights' trainer)")
    synthetic.add_argument("--synthetic", metavar="SCENES",
                           help="train on pairs made on the fly from the scene folder SCENES (training/pack_scenes.py "
                                "output: index.json and PNGs), one cosine of the learning rate over --minutes; "
                                "writes curve.tsv and deep_sritm_x{scale}.npz to -o every epoch")
    synthetic.add_argument("--val-scenes", help="scene folder of the validation pairs (held-out scenes)")
    synthetic.add_argument("--minutes", type=float, help="wall-clock budget (default 5; the last epoch ends past it)")
    synthetic.add_argument("--epoch-steps", type=int, help="steps per epoch, between validations (default 250)")
    synthetic.add_argument("--workers", type=int,
                           help="processes making the pairs, one core each (default: every core but two)")
    synthetic.add_argument("--graphics-prob", type=float,
                           help="share of training pairs with SDR graphics keyed over them (default 0.2); "
                                "the validation pairs keep the default")
    synthetic.add_argument("--teacher", metavar="WEIGHTS",
                           help="distil from this trained network (.npz, e.g. the shipped full one): the target "
                                "blends the pairs' HDR with its output")
    synthetic.add_argument("--teacher-share", type=float,
                           help="share of the teacher's output in the target, 0 to 1 (default 0.5)")
    synthetic.add_argument("--teacher-reuse", type=int,
                           help="steps each batch the teacher labels serves, under flips and quarter turns (default 1)")
    p.set_defaults(func=run, check=check)


def make_config(args):
    from sritm_tf.train.config import TrainConfig

    source = args.source
    if source and source.endswith((".yaml", ".yml")):
        if not os.path.isfile(source):
            raise UserError(f"{source}: no such config file")
        try:
            cfg = TrainConfig.load(source)
        except (ValueError, TypeError) as err:
            raise UserError(str(err)) from None
    else:
        cfg = TrainConfig(data=source)
        if args.pairs:
            for key, value in FINETUNE_DEFAULTS.items():
                setattr(cfg, key, value)
    for key in vars(cfg):
        value = getattr(args, key, None)
        if value is not None and key != "data":
            setattr(cfg, key, value)
    if args.output is not None:  # config.yaml keeps it as run_dir
        cfg.run_dir = args.output
    if cfg.init and os.path.isfile(cfg.init):
        from sritm_tf.pretrained import check_weights_file
        from sritm_tf.train.networks import init_architecture

        check_weights_file(cfg.init)
        try:
            architecture = init_architecture(cfg.init) or {}
        except InputError:  # names the file and the problem
            raise
        except (OSError, ValueError, KeyError) as err:
            raise UserError(f"{cfg.init}: cannot read weights ({err})") from None
        for key, value in architecture.items():
            given = getattr(args, key, None)
            if key in ("scale", "chroma_gate", "shadow_gate") and given is not None:
                # Another scale is allowed: every layer but the upsampler carries over by
                # name (x2 weights are a good start for x4); the rest starts fresh. The gates
                # have no weights: any setting carries the weights.
                continue
            if given is not None and given != value:
                raise UserError(f"{cfg.init}: holds a network with {key}={value}, not {given}")
            setattr(cfg, key, value)
    return cfg


def check_records(shards, patch_size=None):
    """Every record of every shard reads (its CRC) and the first parses (a damaged, cut or
    foreign file is named now, not as a TensorFlow traceback mid-training), and --patch-size
    fits its LR patches."""
    import tensorflow as tf

    from sritm_tf.data.records import parse_example
    from sritm_tf.fileio import captured_stderr

    for shard in shards:
        first, count = [], 0
        try:
            with captured_stderr():  # TensorFlow's C++ log of the same DATA_LOSS
                # Every record is read once (its CRC checked: a record damaged mid-shard is named now,
                # not mid-training); the first is parsed.
                for serialized in tf.data.TFRecordDataset(shard):
                    if not first:
                        first = [parse_example(serialized)[0]]
                    count += 1
        except tf.errors.OpError as err:
            reason = re.sub(r"\{\{.*?\}\}\s*|\s*\[Op:.*", "", err.message.splitlines()[0])  # TF's node names
            where = f" at record {count + 1}" if count else ""
            raise UserError(f"{shard}: not a readable record shard{where} ({reason})") from None
        if not first:
            raise UserError(f"{shard}: no records (an empty shard)")
        height, width = first[0].shape[:2]
        if patch_size is not None and patch_size > min(height, width):
            raise UserError(f"--patch-size {patch_size}: larger than the {width}x{height} LR patches "
                            f"of the records in {os.path.dirname(shard)}")


def check_numbers(source):
    """The rates and counts of `source` (the parsed options, or the whole `TrainConfig` with
    config.yaml's values): one line naming the first that is not finite and positive, or
    not a whole number large enough."""
    for option, key in (("--lr", "lr"), ("--pretrain-lr", "pretrain_lr"), ("--white-nits", "white_nits"),
                        ("--minutes", "minutes")):
        value = getattr(source, key, None)
        if value is not None and not (isinstance(value, numbers.Real) and math.isfinite(value) and value > 0):
            raise UserError(f"{option}: expected a positive number, got {value!r}")
    for option, key, least in (("--steps", "steps", 1), ("--pretrain-steps", "pretrain_steps", 1),
                               ("--batch-size", "batch_size", 1), ("--checkpoint-every", "checkpoint_every", 1),
                               ("--crops", "crops", 1), ("--shuffle-buffer", "shuffle_buffer", 1),
                               ("--channels", "channels", 1), ("--m", "m", 1), ("--n", "n", 0),
                               ("--val-crop", "val_crop", 0), ("--patch-size", "patch_size", 1),
                               ("--epoch-steps", "epoch_steps", 1), ("--workers", "workers", 1),
                               ("--teacher-reuse", "teacher_reuse", 1)):
        value = getattr(source, key, None)
        if value is not None and not (isinstance(value, numbers.Integral) and value >= least):
            raise UserError(f"{option}: expected a whole number of at least {least}, got {value!r}")


def check(args):
    """Before TensorFlow starts: a mistyped rate or count, an option of the other trainer, or
    (--synthetic) a bad scene folder or --init fails at once."""
    check_numbers(args)
    synthetic = args.synthetic is not None
    for key in SYNTHETIC_ONLY if not synthetic else RECORDS_ONLY:
        if getattr(args, key) is not None:
            option = "DATA" if key == "source" else "--" + key.replace("_", "-")
            raise UserError(f"{option}: {'not used with' if synthetic else 'only used with'} --synthetic")
    if synthetic:
        check_synthetic(args)
    elif not (args.source or "").endswith((".yaml", ".yml")):  # a config.yaml's are checked once it is read
        check_paths(args.output, args.pairs, args.init, args.val_pairs)
    if args.grade and not synthetic:
        from sritm_tf.grade import read_grade

        read_grade(args.grade)


def check_paths(run_dir, pairs=None, init=None, val_pairs=None):
    """The files and folders of the records / pairs trainer, without TensorFlow: the output
    folder (-o) is not a file, --pairs comes with an --init that exists, and every pair of
    --pairs reads with matching sizes (`data.pairs.check_pairs`), before any folder is made."""
    from sritm_tf.data.pairs import check_pairs

    if pairs and not init:
        raise UserError("--pairs: fine-tuning needs --init WEIGHTS")
    if run_dir is not None:
        check_folder_output(run_dir, "the output (-o)")
    if init and not os.path.exists(init):
        raise UserError(f"{init}: no such weights file")
    for folder in (pairs, val_pairs):
        if folder and not os.path.isdir(folder):
            raise UserError(f"{folder}: no such folder")
    if pairs:
        check_pairs(pairs)


def check_synthetic(args):
    """As `train.synthetic.check_inputs`, without starting Keras, and the options it needs."""
    from sritm_tf.data.scenes import scene_files

    for key, option in (("val_scenes", "--val-scenes"), ("output", "-o (the output folder)")):
        if getattr(args, key) is None:
            raise UserError(f"--synthetic: needs {option}")
    if args.graphics_prob is not None and not 0 <= args.graphics_prob <= 1:
        raise UserError(f"--graphics-prob: expected a share from 0 to 1, got {args.graphics_prob}")
    if args.teacher_share is not None and not 0 <= args.teacher_share <= 1:
        raise UserError(f"--teacher-share: expected a share from 0 to 1, got {args.teacher_share}")
    for option, path in (("--init", args.init), ("--teacher", args.teacher)):
        if path and not path.endswith(".npz"):
            raise UserError(f"{path}: {option} of --synthetic takes .npz weights")
        if path and not os.path.isfile(path):
            raise UserError(f"{path}: no such file")
    for folder in (args.synthetic, args.val_scenes):
        scene_files(folder)
    check_folder_output(args.output, "the output (-o)")


def check_config(cfg, overwrite):
    from sritm_tf.pipeline import list_shards

    check_numbers(cfg)
    check_paths(cfg.run_dir, cfg.pairs, cfg.init, cfg.val_pairs)  # again: config.yaml may name them
    if not cfg.pairs and not cfg.data:
        raise UserError("give a folder of training records (or a config.yaml, or --init and --pairs)")
    if not cfg.pairs:
        check_records(list_shards(cfg.data), cfg.patch_size)
    for option, value in (("--chroma-gate", cfg.chroma_gate), ("--shadow-gate", cfg.shadow_gate)):
        if not value >= 0:
            raise UserError(f"{option}: expected 0 (none) or a positive level, got {value}")
    final = os.path.join(cfg.run_dir, "final.keras")
    if os.path.exists(final) and not overwrite:
        raise UserError(f"{final}: exists (use --overwrite, or another -o)")
    if os.path.exists(final):
        import shutil

        for name in ("pretrain", "full"):
            shutil.rmtree(os.path.join(cfg.run_dir, name), ignore_errors=True)
        for name in ("pretrain.weights.h5", "final.keras"):
            path = os.path.join(cfg.run_dir, name)
            if os.path.exists(path):
                os.remove(path)


def run(args):
    if args.synthetic is not None:
        return run_synthetic(args)
    cfg = make_config(args)
    check_config(cfg, args.overwrite)
    from sritm_tf.grade import training_white, write_run_grade
    from sritm_tf.train.loop import train

    saved = (args.source or "").endswith((".yaml", ".yml"))  # its white is the run's
    calibration = training_white(cfg, args.grade if args.white_nits is None else None,
                                 fit=args.white_nits is None and not saved)
    train(cfg)
    if cfg.pairs:
        write_run_grade(cfg, calibration)
    print(f"wrote {cfg.run_dir}")
    return 0


def run_synthetic(args):
    from sritm_tf.train.synthetic import train_synthetic

    options = {key: getattr(args, key) if getattr(args, key) is not None else default
               for key, default in SYNTHETIC_DEFAULTS.items()}
    train_synthetic(args.synthetic, args.val_scenes, args.output, init=args.init, workers=args.workers,
                    graphics_prob=args.graphics_prob, teacher=args.teacher,
                    teacher_share=0.5 if args.teacher_share is None else args.teacher_share,
                    teacher_reuse=args.teacher_reuse or 1, **options)
    print(f"wrote {args.output}")
    return 0
