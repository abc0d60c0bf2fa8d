"""The deployment files: no usable secret (docker compose asks for them instead), a
healthcheck that works for every long-running process, metrics ports on this host only, and
a Dockerfile whose dependency layer survives a source change.

No Docker engine runs in the test environment, so ``docker compose config`` is not run: the
YAML is parsed as compose reads it (merge keys included) and the probes are run for real
against local HTTP servers."""

from __future__ import annotations

import http.server
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, free_port

REQUIRED = re.compile(r"^\$\{(?P<name>[A-Z_]+):\?[^}]+\}$")
ANY_REQUIRED = re.compile(r"\$\{(?P<name>[A-Z_]+):\?[^}]+\}")
LONG_RUNNING = ("api", "worker", "scheduler")


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def test_compose_requires_the_secret_key_and_api_keys_from_the_environment() -> None:
    for service in ("api", "worker", "scheduler", "migrate"):
        environment = compose()["services"][service]["environment"]
        for name in ("REMARKET_SECRET_KEY", "REMARKET_API_KEYS"):
            # ${NAME:?message}: compose stops with the message when NAME is unset or empty.
            found = REQUIRED.match(str(environment[name]))
            assert found, f"{service}: {name} = {environment[name]!r} is a fixed value"
            assert found["name"] == name


def test_the_database_password_is_required_too_not_fixed() -> None:
    services = compose()["services"]
    found = REQUIRED.match(str(services["postgres"]["environment"]["POSTGRES_PASSWORD"]))
    assert found and found["name"] == "POSTGRES_PASSWORD"
    for service in ("api", "worker", "scheduler", "migrate"):
        url = services[service]["environment"]["REMARKET_DATABASE_URL"]
        user_and_password = url.split("//", 1)[1].split("@", 1)[0]
        assert ANY_REQUIRED.fullmatch(user_and_password.split(":", 1)[1]), url


def test_env_example_names_every_required_variable_with_no_value() -> None:
    lines = (ROOT / ".env.example").read_text(encoding="utf-8").splitlines()
    settings = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    required = set(ANY_REQUIRED.findall((ROOT / "docker-compose.yml").read_text("utf-8")))
    assert required == {"REMARKET_SECRET_KEY", "REMARKET_API_KEYS", "POSTGRES_PASSWORD"}
    assert settings == dict.fromkeys(required, "")
    assert ".env" in (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()


def test_mailpit_web_ui_is_published_on_this_host_only() -> None:
    # It shows every email caught, with every personal discount code and unsubscribe link.
    assert compose()["services"]["mailpit"]["ports"] == ["127.0.0.1:8025:8025"]


def test_each_process_publishes_its_metrics_port_on_this_host_only() -> None:
    services = compose()["services"]
    host_ports = []
    for name in LONG_RUNNING:
        environment = services[name]["environment"]
        container_port = environment["REMARKET_METRICS_PORT"]
        # Inside the container the server must listen beyond loopback to be published.
        assert environment["REMARKET_METRICS_HOST"] == "0.0.0.0"
        metrics = [p for p in services[name]["ports"] if p.endswith(f":{container_port}")]
        assert len(metrics) == 1, services[name]["ports"]
        interface, host_port, _ = metrics[0].split(":")
        assert interface == "127.0.0.1", metrics[0]
        host_ports.append(host_port)
    assert len(set(host_ports)) == len(LONG_RUNNING)
    # The API itself is the only port open to the network.
    assert "8000:8000" in services["api"]["ports"]


def probe(service: str) -> list[str]:
    """The service's healthcheck as an argv: ["CMD", program, args...] minus "CMD"."""
    check = compose()["services"][service]["healthcheck"]
    assert check["test"][0] == "CMD", check
    assert {"interval", "timeout", "retries", "start_period"} <= set(check)
    return [str(part) for part in check["test"][1:]]


class _Answer(http.server.BaseHTTPRequestHandler):
    status = 200
    paths: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        type(self).paths.append(self.path)
        self.send_response(type(self).status)
        self.end_headers()
        self.wfile.write(b"ok\n")

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def answering() -> Iterator[tuple[int, type[_Answer]]]:
    handler = type("Handler", (_Answer,), {"status": 200, "paths": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], handler
    finally:
        server.shutdown()
        server.server_close()


def run_probe(argv: list[str], env: dict[str, str] | None = None) -> int:
    # The image's `python` is the interpreter the package runs on: use this one.
    assert argv[0] == "python"
    done = subprocess.run([sys.executable, *argv[1:]], env=env, capture_output=True, timeout=30)
    return done.returncode


@pytest.mark.parametrize("service", ["worker", "scheduler"])
def test_worker_and_scheduler_probe_their_metrics_port(
    service: str, answering: tuple[int, type[_Answer]]
) -> None:
    port, handler = answering
    argv = probe(service)
    assert run_probe(argv, {"REMARKET_METRICS_PORT": str(port)}) == 0
    assert handler.paths == ["/metrics"]
    handler.status = 500
    assert run_probe(argv, {"REMARKET_METRICS_PORT": str(port)}) != 0
    assert run_probe(argv, {"REMARKET_METRICS_PORT": str(free_port())}) != 0  # nothing there


def test_the_api_probe_asks_the_health_route_on_the_port_it_serves(
    answering: tuple[int, type[_Answer]],
) -> None:
    command = compose()["services"]["api"]["command"]
    api_port = command[command.index("--port") + 1]
    argv = probe("api")
    url = re.search(r"http://127\.0\.0\.1:(\d+)(/\S*?)'", argv[-1])
    assert url, argv
    assert url[1] == api_port
    assert url[2] == "/v1/health"  # the route that checks the database and the broker
    port, handler = answering
    moved = [*argv[:-1], argv[-1].replace(f":{api_port}/", f":{port}/")]
    assert run_probe(moved) == 0
    assert handler.paths == ["/v1/health"]
    handler.status = 503  # what /v1/health answers when the database or broker is down
    assert run_probe(moved) != 0


def test_the_health_route_exists_and_needs_no_key() -> None:
    from fastapi.testclient import TestClient

    from remarket_mailer.bootstrap import build_app
    from remarket_mailer.entrypoints.api import create_api
    from tests.conftest import make_settings

    app = build_app(make_settings())  # an in-memory database, not migrated: 503 here
    try:
        answer = TestClient(create_api(app)).get("/v1/health")
        assert answer.status_code == 503
        assert answer.json() == {"status": "unavailable", "failing": ["database"]}
    finally:
        app.close()


def dockerfile_steps() -> list[str]:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]


def test_the_dockerfile_installs_dependencies_before_it_copies_the_source() -> None:
    steps = dockerfile_steps()

    def first(pattern: str) -> int:
        return next(i for i, step in enumerate(steps) if re.search(pattern, step))

    copy_pyproject = first(r"^COPY pyproject\.toml ")
    install_deps = first(r"^RUN .*pip install -r ")
    copy_source = first(r"^COPY src ")
    install_package = first(r"^RUN pip install --no-deps \.$")
    assert copy_pyproject < install_deps < copy_source < install_package
    # Nothing that changes with the source comes before the dependency layer.
    assert all(
        not s.startswith(("COPY", "ADD")) or s == steps[copy_pyproject]
        for s in steps[:install_deps]
    )


def test_the_dockerfile_reads_the_dependencies_pyproject_declares() -> None:
    import tomllib

    install = next(s for s in dockerfile_steps() if "pip install -r" in s)
    script = re.search(r'python -c "(.+?)" >', install)
    assert script
    done = subprocess.run(
        [sys.executable, "-c", script[1]], cwd=ROOT, capture_output=True, text=True, check=True
    )
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]
    assert done.stdout.split("\n")[:-1] == declared["dependencies"]
    assert "EXPOSE 8000 9100" in dockerfile_steps()
