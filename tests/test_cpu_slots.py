"""bench/h200/cpu_slots.py: side-by-side servers get whole physical cores, the client the rest."""
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("cpu_slots", ROOT / "bench/h200/cpu_slots.py")
cpu_slots = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cpu_slots)


def fake_sysfs(tmp_path, siblings: dict[int, str], online: str | None = None) -> Path:
    root = tmp_path / "cpu"
    for cpu, sib in siblings.items():
        topo = root / f"cpu{cpu}" / "topology"
        topo.mkdir(parents=True)
        (topo / "thread_siblings_list").write_text(sib + "\n")
    if online is not None:
        (root / "online").write_text(online + "\n")
    return root


def test_parse_list():
    assert cpu_slots.parse_list("0-2,8,10-11\n") == [0, 1, 2, 8, 10, 11]


def test_siblings_k_and_k_plus_8_go_together(tmp_path, capsys):
    # 8 cores x 2 threads, siblings k and k+8 (a common numbering)
    root = fake_sysfs(tmp_path, {c: f"{c % 8},{c % 8 + 8}" for c in range(16)}, online="0-15")
    report = tmp_path / "topo.txt"
    rc = cpu_slots.main(["--per-server", "2", "--servers", "5", "--sysfs", str(root),
                         "--report", str(report)])
    assert rc == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["0,8", "1,9", "2,10", "3,11", "4,12", "5,13,6,14,7,15"]
    assert "8 physical cores, up to 2 threads each" in report.read_text()
    assert "note:" not in report.read_text()


def test_odd_share_is_reported(tmp_path, capsys):
    root = fake_sysfs(tmp_path, {c: f"{c - c % 2}-{c - c % 2 + 1}" for c in range(8)})
    report = tmp_path / "topo.txt"
    assert cpu_slots.main(["--per-server", "3", "--servers", "2", "--sysfs", str(root),
                           "--report", str(report)]) == 0
    assert capsys.readouterr().out.splitlines() == ["0,1,2", "3,4,5", "6,7"]
    assert "not a multiple of 2 threads per core" in report.read_text()


def test_offline_cpus_and_missing_topology(tmp_path, capsys):
    # cpu3 offline; cpu2 has no topology folder: a core of its own
    root = fake_sysfs(tmp_path, {0: "0,3", 1: "1"}, online="0-2")
    (root / "cpu2").mkdir()
    assert cpu_slots.main(["--per-server", "1", "--servers", "2", "--sysfs", str(root)]) == 0
    assert capsys.readouterr().out.splitlines() == ["0", "1", "2"]


def test_no_cpu_left_for_the_client(tmp_path, capsys):
    root = fake_sysfs(tmp_path, {c: str(c) for c in range(4)})
    assert cpu_slots.main(["--per-server", "2", "--servers", "2", "--sysfs", str(root)]) == 0
    assert capsys.readouterr().out.splitlines() == ["0,1", "2,3", ""]


@pytest.mark.parametrize("args, field", [(["--per-server", "3", "--servers", "2"], "needs 6 CPUs"),
                                         (["--per-server", "0", "--servers", "2"], "--per-server")])
def test_bad_requests_name_the_field(tmp_path, capsys, args, field):
    root = fake_sysfs(tmp_path, {c: str(c) for c in range(4)})
    assert cpu_slots.main(args + ["--sysfs", str(root)]) == 2
    assert field in capsys.readouterr().err
