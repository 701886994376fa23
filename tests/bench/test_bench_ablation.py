"""`sritm bench ablation`: the paper's Tables 1-3 retrained on tiny records."""
import math

import pytest

from sritm_tf import cli
from sritm_tf.benchmarks import ablation
from sritm_tf.model import TABLE1, build_deep_sritm, build_toy_network
from tests.helpers.records import write_records

TINY = ["--steps", "2", "--batch-size", "2", "--toy-channels", "4", "--toy-blocks", "1", "--channels", "4", "--m", "1",
        "--n", "1", "--eager"]


def tables(out):
    """{table number: {row name: [cells]}} of the markdown tables in `out`."""
    parsed, current = {}, None
    for line in out.splitlines():
        if line.startswith("| Table "):
            current = parsed.setdefault(int(line.split()[2]), {"columns": line.strip("| ").split(" | ")[1:]})
        elif line.startswith("|") and current is not None and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip()[1:-1].split("|")]
            current[cells[0]] = cells[1:]
        elif not line.startswith("|"):
            current = None
    return parsed


@pytest.mark.slow
def test_ablation_prints_the_three_tables(tmp_path, capsys):
    data = write_records(str(tmp_path / "records"), count=6, size=16, shards=2)
    assert cli.main(["bench", "ablation", data] + TINY) == 0
    out = capsys.readouterr().out
    assert "held out: last shard of DATA (shard-00001.tfrecord)" in out
    parsed = tables(out)
    assert sorted(parsed) == [1, 2, 3]
    assert parsed[1]["columns"] == parsed[3]["columns"] == ["(a)", "(b)", "(c)", "(d)", "(e)"]
    assert parsed[2]["columns"] == ["(a)", "(b)", "(c)"]
    assert parsed[1]["inputs"] == ["I", "[I, I_b, I_d]", "I_b; I_d", "[I, I_b]; [I, I_d]", "I; I_b; I_d"]
    assert parsed[2]["SMF_b input"] == ["I", "I_b", "[I, I_b]"]
    assert parsed[3]["modulation"] == ["", "", "", "x", "x"]
    # Parameter rows: the networks the builders make with the printed filters.
    filters = [int(f) for f in parsed[1]["filters"]]
    assert parsed[1]["parameters"] == [f"{build_toy_network(channels=c, blocks=1, passes=p).count_params():,}"
                                       for c, p in zip(filters, TABLE1.values())]
    switches = [(0, 0, 0), (1, 0, 0), (1, 1, 0), (1, 0, 1), (1, 1, 1)]
    assert parsed[3]["parameters"] == [
        f"{build_deep_sritm(2, 4, 1, 1, decomposition=bool(g), skips=bool(s), modulation=bool(m)).count_params():,}"
        for g, s, m in switches]
    for table in parsed.values():
        assert all(0 < float(v) < 100 for v in table["PSNR (dB), ours"])
        assert all(-1 <= float(v) <= 1 for v in table["SSIM, ours"])
    # Table 2 (c) is Table 1 (d), trained once: the same numbers.
    assert parsed[2]["PSNR (dB), ours"][2] == parsed[1]["PSNR (dB), ours"][3]
    assert out.count("table 1 (d):") == 1 and "| PSNR (dB), paper | 38.11-38.46 over (a)-(e)" in out
    assert "35.29-35.59 over (a)-(e)" in out and "38.43-38.52 over (a)-(c)" in out


def test_ablation_needs_held_out_records(tmp_path, capsys):
    data = write_records(str(tmp_path / "one"), count=2, size=16, shards=1)
    assert cli.main(["bench", "ablation", data] + TINY) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"sritm bench: error: {data}: one shard; pass --val with held-out records"
    assert cli.main(["bench", "ablation", data, "--val", str(tmp_path / "missing")] + TINY) == 2
    assert "--val " in capsys.readouterr().err


def test_variants_share_a_key_only_when_the_network_is_the_same():
    args = cli.build_parser().parse_args(["bench", "ablation", "data"] + TINY)
    keys = {table: [key for _, _, key, _ in ablation.variants(table, args)] for table in (1, 2, 3)}
    assert keys[2][2] == keys[1][3]
    every = keys[1] + keys[2] + keys[3]
    assert len(set(every)) == len(every) - 1
    assert math.isclose(ablation.PAPER_RANGES[3][1], 35.59)


def test_command_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["bench", "ablation", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "usage: sritm bench ablation" in out and "--toy-channels" in out and "--val" in out
