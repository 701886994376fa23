"""The table of shipped networks (`sritm_tf.presets`) and `from_preset`: each preset
builds exactly its network, and weights go only into the network they were saved from."""
import json
import os

import numpy as np
import pytest

import sritm_tf
from sritm_tf import pretrained, presets
from sritm_tf.errors import InputError
from sritm_tf.model import build_deep_sritm

TINY = {"channels": 4, "m": 1, "n": 1}


def stored_config(path):
    with np.load(path) as data:
        return json.loads(str(data["config"]))


@pytest.mark.parametrize("name", sorted(presets.PRESETS))
def test_each_preset_names_an_existing_file_saved_from_its_network(name):
    entry = presets.PRESETS[name]
    path = pretrained.preset_weights_path(name)
    assert os.path.isfile(path) and os.path.basename(path) == entry.weights
    assert stored_config(path) == pytest.approx(entry.config)
    assert entry.card == f"MODEL_CARD.md#{name}" and entry.config["skip"] == "classical"
    assert pretrained.bundled_weights_path(entry.config["scale"], entry.model) == path
    assert {k: entry.config[k] for k in ("channels", "m", "n")} == presets.MODELS[entry.model]


def test_from_preset_builds_the_table_network_and_matches_load_model():
    model = sritm_tf.from_preset("deep_sritm_x2", white_nits=203.0)
    assert pretrained.model_config(model) == pytest.approx(presets.PRESETS["deep_sritm_x2"].config)
    assert model.get_layer("classical").white_nits == 203.0
    x = np.random.default_rng(0).random((1, 12, 16, 3)).astype(np.float32)
    np.testing.assert_array_equal(model(x).numpy(), sritm_tf.load_model(scale=2)(x).numpy())
    assert "deep_sritm_x4" in sritm_tf.PRESETS


def test_preset_weights_go_into_no_other_network():
    path = pretrained.preset_weights_path("deep_sritm_x2")
    for changed, words in (({"skip": "bicubic"}, "skip 'classical', not 'bicubic'"),
                           ({"chroma_gate": 0}, "chroma_gate"), ({"shadow_gate": 0.002}, "shadow_gate")):
        config = {**presets.PRESETS["deep_sritm_x2"].config, **changed}
        with pytest.raises(InputError, match="deep_sritm_x2.npz") as err:
            pretrained.fill_weights_npz(build_deep_sritm(**config), path)
        assert words in str(err.value) and len(str(err.value).splitlines()) == 1
    with pytest.raises(InputError, match="skip 'classical', not 'bicubic'"):
        pretrained.load_weights_npz(path, skip="bicubic")


@pytest.mark.parametrize("changed", [{"scale": 4}, {"channels": 8}, {"m": 2}, {"n": 2}, {"modulation": False},
                                     {"skips": False}])
def test_npz_weights_go_into_no_network_of_another_shape(changed, tmp_path):
    path = pretrained.save_weights_npz(build_deep_sritm(2, **TINY), str(tmp_path / "tiny.npz"))
    key = next(iter(changed))
    with pytest.raises(InputError, match=f"tiny.npz: these weights are for another network .*{key} "):
        pretrained.fill_weights_npz(build_deep_sritm(**{"scale": 2, **TINY, **changed}), path)
    filled = pretrained.fill_weights_npz(build_deep_sritm(2, **TINY), path)
    assert pretrained.model_config(filled)["channels"] == 4


def test_weights_h5_of_another_skip_is_refused(tmp_path):
    path = str(tmp_path / "classical.weights.h5")
    build_deep_sritm(2, skip="classical").save_weights(path)
    with pytest.raises(InputError, match="classical.weights.h5: .*skip 'classical', not 'bicubic'"):
        pretrained.load_model(2, path)


def test_unknown_preset_is_one_line_listing_the_known_ones():
    with pytest.raises(InputError) as err:
        sritm_tf.from_preset("deep_sritm_x3")
    message = str(err.value)
    assert len(message.splitlines()) == 1 and "deep_sritm_x3" in message
    assert all(name in message for name in presets.PRESETS)
