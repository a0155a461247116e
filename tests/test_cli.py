"""The ``unialign`` command."""

from __future__ import annotations

import json
import subprocess
import sys

from unialign.cli import main


def test_info_json_counts_add_up(capsys) -> None:
    assert main(["info", "unialign-test-tiny", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["total"] == report["frozen"] + report["trainable"]
    parts = sum(sum(group.values()) for group in report["breakdown"].values())
    assert parts == report["trainable"]
    # tiny: width 64, 2 blocks, 5 modalities, n=2, r=4 -> per modality A+B = 2*(64*8), router 64*2
    assert report["breakdown"]["experts"] == {m: 2 * 2 * 64 * 8 for m in ["image", "video", "depth", "point", "audio"]}
    assert report["breakdown"]["routers"]["audio"] == 2 * 64 * 2
    assert set(report["breakdown"]["projectors"]) == {"point_teacher", "audio_teacher"}


def test_info_paper_config_and_overrides(capsys) -> None:
    assert main(["info", "unialign-vitb16", "moe.experts_per_modality=1", "moe.top_k=1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["breakdown"]["experts"]["image"] == 12 * 768 * 4 * 2
    assert main(["info", "unialign-vitb16"]) == 0
    assert "trainable" in capsys.readouterr().out


def test_errors_exit_2_with_message() -> None:
    proc = subprocess.run([sys.executable, "-m", "unialign.cli", "info", "no-such-model"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "unknown model 'no-such-model'" in proc.stderr
