"""`python -m pipeline.runner.prefect_api CMD`: one Prefect API for every process of a command (make repro)."""

import subprocess
import sys

PROBE = ("import os, urllib.request; url = os.environ['PREFECT_API_URL']; "
         "print(url, urllib.request.urlopen(url + '/health', timeout=30).status)")


def _run(env_url: str | None) -> subprocess.CompletedProcess:
    import os

    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    if env_url:
        env["PREFECT_API_URL"] = env_url
    return subprocess.run([sys.executable, "-m", "pipeline.runner.prefect_api", sys.executable, "-c",
                           PROBE if env_url is None else "import os; print(os.environ['PREFECT_API_URL'])"],
                          env=env, capture_output=True, text=True, timeout=300)


def test_the_command_sees_a_live_shared_server():
    out = _run(None)
    assert out.returncode == 0, out.stderr
    url, status = out.stdout.split()
    assert url.startswith("http://127.0.0.1:") and url.endswith("/api") and status == "200"


def test_the_commands_exit_code_is_returned():
    import os

    env = dict(os.environ, PREFECT_API_URL="http://prefect.example:4200/api")  # no server needed
    failing = subprocess.run([sys.executable, "-m", "pipeline.runner.prefect_api", sys.executable, "-c", "raise SystemExit(3)"],
                             env=env, capture_output=True, text=True, timeout=300)
    assert failing.returncode == 3


def test_a_configured_api_is_passed_through_untouched():
    out = _run("http://prefect.example:4200/api")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "http://prefect.example:4200/api"


def test_no_command_is_a_usage_error():
    out = subprocess.run([sys.executable, "-m", "pipeline.runner.prefect_api"], capture_output=True, text=True)
    assert out.returncode == 2 and "usage" in out.stderr
