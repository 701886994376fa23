#!/usr/bin/env bash
# `sritm convert` and `sritm bench convert` on a GPU machine: a 1080p SDR clip to 4K HEVC at x2 bf16,
# each stage's frames per second for each x265 preset, and the stage that limits (docs/benchmarks.md).
#
#   bash sritm_tf/benchmarks/device_convert.sh prepare   # on a machine with pip: .devcarry/ (git-ignored),
#                                                        # what a bare JAX GPU image lacks
#   bash sritm_tf/benchmarks/device_convert.sh run       # on the GPU machine, .devcarry/ carried along
#
# `prepare` fetches wheels for CPython 3.12 (keras, namex, optree; PyAV repacked as av.tar.xz) and the
# static ffmpeg (with libx265) of the imageio-ffmpeg wheel as ffmpeg.xz, about 50 MB in all. `run` uses
# what the machine has and unpacks the rest into /tmp, makes the clip (the bundled sample photo, panned
# across the frame with moving grain, H.264), converts it once with `sritm convert` (the CLI end to end,
# its frames counted back) and runs `sritm bench convert` with every preset; everything goes to $OUT.
#
# Settings (environment): OUT (./out-device), SIZE (1920x1080), FRAMES (48), SCALE (2), PRECISION (bf16),
# PRESETS ("ultrafast fast medium"), CRF (18), BATCH (sritm's choice), WEIGHTS (the bundled), CLIP (an SDR
# clip of your own instead of the made one), PYTHON (python3), KERAS_BACKEND (jax).
set -euo pipefail
cd "$(dirname "$0")/../.."
CARRY=.devcarry

prepare() {
    mkdir -p "$CARRY" && rm -rf "$CARRY"/*
    local exclude; exclude=$(git rev-parse --git-path info/exclude) && mkdir -p "$(dirname "$exclude")"
    grep -qx "/$CARRY/" "$exclude" 2>/dev/null || echo "/$CARRY/" >> "$exclude"
    local pip=(python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp
               --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
               --platform manylinux2014_x86_64 -d "$CARRY")
    "${pip[@]}" keras==3.15.1 namex==0.1.0 optree==0.20.0 av==18.1.0 imageio-ffmpeg==0.6.0
    local tmp; tmp=$(mktemp -d)
    (cd "$tmp" && python3 -m zipfile -e "$OLDPWD"/$CARRY/av-*.whl av && tar cf - -C av . | xz -T0 -9 > av.tar.xz)
    (cd "$tmp" && python3 -m zipfile -e "$OLDPWD"/$CARRY/imageio_ffmpeg-*.whl ff && xz -T0 -9 -c ff/imageio_ffmpeg/binaries/ffmpeg-* > ffmpeg.xz)
    mv "$tmp"/av.tar.xz "$tmp"/ffmpeg.xz "$CARRY"/ && rm -rf "$tmp" "$CARRY"/av-*.whl "$CARRY"/imageio_ffmpeg-*.whl
    du -sh "$CARRY"
}

run() {
    local py=${PYTHON:-python3} out=${OUT:-$PWD/out-device} site=/tmp/sritm-site bin=/tmp/sritm-bin
    local size=${SIZE:-1920x1080} frames=${FRAMES:-48} scale=${SCALE:-2} precision=${PRECISION:-bf16}
    local presets=${PRESETS:-ultrafast fast medium} crf=${CRF:-18} work
    mkdir -p "$out" "$site" "$bin" && work=$(mktemp -d)
    export PATH="$bin:$PATH" PYTHONPATH="$PWD:$site${PYTHONPATH:+:$PYTHONPATH}" KERAS_BACKEND=${KERAS_BACKEND:-jax}
    if [ -d "$CARRY" ]; then  # only what this machine lacks
        "$py" -c "import keras" 2>/dev/null || "$py" -m pip install -q --no-index --no-deps --no-compile \
            --target "$site" "$CARRY"/*.whl
        "$py" -c "import av" 2>/dev/null || tar xJf "$CARRY"/av.tar.xz -C "$site"
        command -v ffmpeg >/dev/null || { xz -dc "$CARRY"/ffmpeg.xz > "$bin"/ffmpeg && chmod +x "$bin"/ffmpeg; }
    fi
    { command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
      "$py" -c "import jax, keras, av; print('jax', jax.__version__, jax.devices(), 'keras', keras.__version__, 'av', av.__version__)"
      ffmpeg -version | head -1; nproc; } > "$out"/environment.txt 2>&1
    cat "$out"/environment.txt
    local clip=${CLIP:-$work/sdr.mp4} w=${size%x*} h=${size#*x}
    if [ -z "${CLIP:-}" ]; then
        local sample; sample=$("$py" -c "from sritm_tf import pretrained; print(pretrained.sample_path())")
        ffmpeg -nostdin -v error -y -loop 1 -framerate 24 -i "$sample" -frames:v "$frames" \
            -vf "scale=$((2 * w)):-2,crop=$w:$h:mod(n*8\,iw-ow):mod(n*4\,ih-oh),noise=alls=6:allf=t+u" \
            -c:v libx264 -preset veryfast -crf 16 -pix_fmt yuv420p \
            -color_primaries bt709 -color_trc bt709 -colorspace bt709 "$clip"
    fi
    local net=(--scale "$scale" --precision "$precision" ${WEIGHTS:+--weights "$WEIGHTS"})
    local first=${presets%% *} input=$clip extra=()
    if ! command -v ffprobe >/dev/null; then  # sritm convert reads a video's other streams with ffprobe
        ffmpeg -nostdin -v error -y -i "$clip" -f rawvideo -pix_fmt yuv420p "$work"/sdr.yuv
        input=$work/sdr.yuv extra=(--input-size "$size" --fps 24)
    fi
    local t0=$SECONDS
    "$py" -m sritm_tf.cli convert "$input" "${extra[@]}" -o "$work"/hdr.mkv "${net[@]}" --preset "$first" \
        --crf "$crf" --quiet --overwrite
    "$py" -c "import av, sys; c = av.open(sys.argv[1]); s = c.streams.video[0]
print('sritm convert:', sys.argv[2], '->', sum(1 for _ in c.decode(s)), 'frames', s.width, 'x', s.height, s.codec_context.name,
      s.codec_context.pix_fmt, 'in', sys.argv[3], 's wall (compile included)')" \
        "$work"/hdr.mkv "$(basename "$input")" "$((SECONDS - t0))" | tee "$out"/convert.txt
    # shellcheck disable=SC2086  # one argument per preset
    "$py" -m sritm_tf.cli bench convert "$clip" "${net[@]}" --preset $presets --crf "$crf" \
        ${BATCH:+--batch-size "$BATCH"} | tee "$out"/bench_convert.md
    rm -rf "$work"
}

case "${1:-run}" in
    prepare) prepare ;;
    run) run ;;
    *) echo "usage: $0 prepare|run" >&2; exit 2 ;;
esac
