"""KerasTuner's chief/worker mode on 127.0.0.1: one oracle, two workers sharing the trials."""

import json
import os
import re
import socket
import subprocess
import sys
import time

from conftest import REPO


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_chief_and_two_workers_share_one_search(tmp_path):
    port = _free_port()
    args = [sys.executable, "-m", "trainer.search", "--tuner", "random", "--max-trials", 4,
            "--subset", 100, "--val-size", 50, "--epochs", 1, "--batch-size", 50, "--threads", 1,
            "--tuning-dir", tmp_path, "--verbose", 0]
    base = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERASTUNER_ORACLE_IP": "127.0.0.1",
            "KERASTUNER_ORACLE_PORT": str(port)}

    def start(role):
        return subprocess.Popen([str(a) for a in args], cwd=REPO, env={**base, "KERASTUNER_TUNER_ID": role},
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    chief = start("chief")
    time.sleep(3)  # let the oracle server bind before workers dial it
    workers = [start(f"tuner{i}") for i in range(2)]
    try:
        outs = [w.communicate(timeout=400)[0] for w in workers]
        chief_out = chief.communicate(timeout=120)[0]
    finally:
        for p in (chief, *workers):
            p.kill()
    for proc, out in zip(workers, outs):
        assert proc.returncode == 0, out[-3000:]
    assert chief.returncode == 0, chief_out[-3000:]

    ran = [set(re.findall(rf"\[tuner{i}\] trial (\d+) COMPLETED", out)) for i, out in enumerate(outs)]
    assert all(ran), f"each worker should run at least one trial: {ran}"
    assert not (ran[0] & ran[1]), "no trial should run twice"
    summary = json.loads((tmp_path / "summary.json").read_text())  # written by the chief
    assert len(summary["trials"]) == 4
    assert sum(t["status"] == "COMPLETED" for t in summary["trials"]) >= 3
