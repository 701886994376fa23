"""Fine-tuning to a few graded pairs (`sritm train --pairs`): what keeps it adding to the
calibration (`sritm_tf.grade`, the grade's white) instead of replacing what the --init network
knows.

- A held-out strip: the right `cfg.holdout` (default 1/4) of each pair's width is kept out of the
  training crops (`split_holdout`); the network is scored on it (MSE on HR Y'CbCr, the default
  recipe's loss) before the first step and at every checkpoint, and the run ends with the best of those
  weights, the --init network's included (`KeepBest`): early stopping on held-out data
  (Prechelt, "Early Stopping - But When?", 1998), chosen on the training frames only, so a run
  that only fits its own crops gives back the --init network (calibration alone).
- The anchor crops (`train.data.anchor_crops`): where the pairs show nothing, the --init
  network's output is the target.
"""
import math

import keras
import numpy as np


def split_holdout(pairs, share, scale):
    """(training pairs, held-out pairs): each (LR SDR, HR HDR) pair cut at 1 - `share` of its
    LR width; the right part is held out. share 0: (pairs, [])."""
    if not share:
        return pairs, []
    train, held = [], []
    for sdr, hdr in pairs:
        cut = sdr.shape[1] - max(1, round(sdr.shape[1] * share))
        train.append((sdr[:, :cut], hdr[:, :cut * scale]))
        held.append((sdr[:, cut:], hdr[:, cut * scale:]))
    return train, held


class KeepBest(keras.callbacks.Callback):
    """Scores the network on the held-out pairs (mean MSE, whole strips, batch 1) before the
    first step and after every epoch (checkpoint interval); at the end the weights with the
    lowest score are put back, the starting ones if no step beat them. `self.curve` holds
    (step, loss, PSNR in dB) per score."""

    def __init__(self, held, interval):
        super().__init__()
        self.held, self.interval, self.curve = held, interval, []
        self.best, self.best_weights = math.inf, None

    def _score(self, step):
        loss = float(np.mean([np.mean((np.asarray(self.model(sdr[None], training=False), np.float32)[0] - hdr) ** 2)
                              for sdr, hdr in self.held]))
        self.curve.append((step, loss, -10 * math.log10(max(loss, 1e-12))))
        print(f"held-out strip: step {step}, loss {loss:.3e} ({self.curve[-1][2]:.2f} dB)", flush=True)
        if loss < self.best:
            self.best, self.best_weights = loss, self.model.get_weights()

    def on_train_begin(self, logs=None):
        self._score(0)

    def on_epoch_end(self, epoch, logs=None):
        self._score((epoch + 1) * self.interval)

    def on_train_end(self, logs=None):
        step = min(self.curve, key=lambda c: c[1])[0]
        print(f"held-out strip: keeping step {step}" + (" (the --init network)" if step == 0 else ""), flush=True)
        self.model.set_weights(self.best_weights)
