"""TFRecord example format of the training pairs (a contract with the tf.data pipeline).

One `tf.train.Example` per patch:
  "sdr":      bytes, PNG of the LR SDR patch, uint8 RGB, BT.709 primaries, gamma-encoded
              (BT.1886, what a user feeds the converter), shape [h, w, 3];
  "hdr":      bytes, PNG of the HR HDR10 patch, uint16 RGB, BT.2020 primaries, PQ, full range,
              shape [scale*h, scale*w, 3]. Values are 10-bit codes D (BT.2100 full range,
              D = round(1023 E')) widened to 16 bits as v = round(D * 65535 / 1023), the
              convention of the graded HDR10 PNGs and of `sritm_tf.imageio`
              (`imageio.hdr10_codes_to_uint16`). Decode with E' = v / 65535 (|error| <= 7.7e-6
              vs D / 1023) or D = round(v * 1023 / 65535) (`imageio.uint16_to_hdr10_codes`);
  "source":   bytes, utf-8 path of the source file;
  "frame":    int64, frame index within the source (0 for stills);
  "box":      int64 list [y, x, h, w] of the patch in HR pixels of the source frame;
  "operator": bytes, name of the SDR operator ("bt2446a", "hable", or "master" for graded SDR);
  "scale":    int64, 2 or 4.
"""
import cv2
import numpy as np

from sritm_tf.imageio import encode_image


def encode_example(sdr_lr_rgb8, hdr_hr_rgb16, source, frame, box, operator):
    """Serialize one training pair as a `tf.train.Example` (see the module docstring)."""
    import tensorflow as tf

    sdr = np.asarray(sdr_lr_rgb8)
    hdr = np.asarray(hdr_hr_rgb16)
    if sdr.dtype != np.uint8 or hdr.dtype != np.uint16 or sdr.shape[-1] != 3 or hdr.shape[-1] != 3:
        raise ValueError(f"need uint8 SDR and uint16 HDR RGB, got {sdr.dtype}{sdr.shape}, {hdr.dtype}{hdr.shape}")
    scale = hdr.shape[0] // sdr.shape[0]
    if hdr.shape[:2] != (scale * sdr.shape[0], scale * sdr.shape[1]) or scale < 1:
        raise ValueError(f"HDR patch {hdr.shape[:2]} is not an integer multiple of SDR patch {sdr.shape[:2]}")

    def _bytes(value):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    def _ints(values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))

    features = {
        "sdr": _bytes(encode_image(sdr, ".png", [cv2.IMWRITE_PNG_COMPRESSION, 3])),
        "hdr": _bytes(encode_image(hdr, ".png", [cv2.IMWRITE_PNG_COMPRESSION, 3])),
        "source": _bytes(str(source).encode("utf-8")),
        "frame": _ints([frame]),
        "box": _ints(box),
        "operator": _bytes(str(operator).encode("utf-8")),
        "scale": _ints([scale]),
    }
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def feature_spec():
    """`tf.io.parse_single_example` spec of the record format."""
    import tensorflow as tf

    return {
        "sdr": tf.io.FixedLenFeature([], tf.string),
        "hdr": tf.io.FixedLenFeature([], tf.string),
        "source": tf.io.FixedLenFeature([], tf.string),
        "frame": tf.io.FixedLenFeature([], tf.int64),
        "box": tf.io.FixedLenFeature([4], tf.int64),
        "operator": tf.io.FixedLenFeature([], tf.string),
        "scale": tf.io.FixedLenFeature([], tf.int64),
    }


def parse_example(serialized):
    """Serialized example -> (sdr uint8 [h, w, 3], hdr uint16 [s*h, s*w, 3]); usable in `tf.data` map."""
    import tensorflow as tf

    parsed = tf.io.parse_single_example(serialized, feature_spec())
    sdr = tf.io.decode_png(parsed["sdr"], channels=3, dtype=tf.uint8)
    hdr = tf.io.decode_png(parsed["hdr"], channels=3, dtype=tf.uint16)
    return sdr, hdr


def parse_example_full(serialized):
    """Like `parse_example`, but returns the dict of all features with decoded images."""
    import tensorflow as tf

    parsed = tf.io.parse_single_example(serialized, feature_spec())
    parsed["sdr"] = tf.io.decode_png(parsed["sdr"], channels=3, dtype=tf.uint8)
    parsed["hdr"] = tf.io.decode_png(parsed["hdr"], channels=3, dtype=tf.uint16)
    return parsed
