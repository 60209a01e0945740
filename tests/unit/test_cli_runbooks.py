"""`opsloop runbooks list|validate|run|examples`."""

import subprocess
import sys


def opsloop(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "opsloop.cli", "runbooks", *args], capture_output=True, text=True,
        timeout=120, cwd=cwd,
    )  # fmt: skip


def test_examples_validate_list_and_dry_run(tmp_path):
    folder = tmp_path / "h" / "runbooks"
    r = opsloop("examples", "--to", str(folder))
    assert r.returncode == 0 and r.stdout.count("copied") == 4
    r = opsloop("validate", str(folder))
    assert r.returncode == 0 and "4 valid, 0 invalid" in r.stdout
    r = opsloop("list", "--home", str(tmp_path / "h"))
    assert "clean-old-files" in r.stdout and "scale-service" in r.stdout
    r = opsloop("run", "clean-old-files", "--param", f"dir={tmp_path}", "--dry-run",
                "--home", str(tmp_path / "h"))  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert f'["find", "{tmp_path}", "-xdev"' in r.stdout and "nothing was executed" in r.stdout


def test_validate_reports_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ntriggers: [{manual: {}}]\nsteps:\n  - shell: {argv: 'rm -rf /'}\n")
    r = opsloop("validate", str(bad))
    assert r.returncode == 1
    assert f"{bad}:4:" in r.stderr and "argv" in r.stderr


def test_run_for_real_and_refusals(tmp_path):
    folder = tmp_path / "h" / "runbooks"
    folder.mkdir(parents=True)
    (folder / "hi.yaml").write_text(
        "name: hi\ntriggers: [{manual: {}}]\nparameters: {who: {type: string, default: you}}\n"
        "steps:\n  - shell: {argv: [echo, 'hi ${params.who}']}\n"
    )
    r = opsloop("run", "hi", "--param", "who=$(id)", "--home", str(tmp_path / "h"))
    assert r.returncode == 0, r.stderr
    assert "hi $(id)" in r.stdout and "succeeded" in r.stdout
    r = opsloop("run", "nope", "--home", str(tmp_path / "h"))
    assert r.returncode == 2 and r.stderr.startswith("error: no runbook")
