"""`msi-sandbox`: run the imitated services and inspect or change what they hold."""

from __future__ import annotations

import json
import os
import shlex
import signal
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import click
import requests

from msi_sandbox.generator import SIZES
from msi_sandbox.server import (
    DEFAULT_PORTS,
    SANDBOX_FILE,
    SERVICE_CLASSES,
    build_service,
    environment_variables,
    start,
)

DEFAULT_DATA_DIR = ".sandbox"
# Lines per admin-API call when loading into a running sandbox (keeps request bodies bounded).
LOAD_CHUNK = 20_000
data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DATA_DIR,
    show_default=True,
    envvar="MSI_SANDBOX_DATA_DIR",
    help="Where the databases, certificates and sandbox.json live.",
)


@click.group()
def main() -> None:
    """Local stand-ins for the Marketo, Salesforce and Dynamics 365 APIs."""


@main.command()
@data_dir_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--marketo-port", type=int, default=DEFAULT_PORTS["marketo"], show_default=True)
@click.option("--salesforce-port", type=int, default=DEFAULT_PORTS["salesforce"], show_default=True)
@click.option("--dynamics-port", type=int, default=DEFAULT_PORTS["dynamics"], show_default=True)
@click.option("--tls/--no-tls", default=True, show_default=True, help="https with a local CA.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds data and faults.")
@click.option(
    "--size",
    type=click.Choice(sorted(SIZES)),
    default=None,
    help="Fill empty services with a generated world of this size.",
)
@click.option(
    "--service",
    "services",
    multiple=True,
    type=click.Choice(sorted(SERVICE_CLASSES)),
    help="Run only these services (default: all).",
)
def serve(
    data_dir: Path,
    host: str,
    marketo_port: int,
    salesforce_port: int,
    dynamics_port: int,
    tls: bool,
    seed: int,
    size: str | None,
    services: tuple[str, ...],
) -> None:
    """Run the services until stopped (Ctrl-C or SIGTERM)."""
    running = _running_sandbox(data_dir)
    if running is not None:
        raise click.ClickException(f"a sandbox already serves {data_dir} (pid {running.pid})")
    # Handlers first, so a signal during a long `--size large` start still ends in a clean stop.
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    try:
        sandbox = start(
            data_dir,
            host=host,
            ports={
                "marketo": marketo_port,
                "salesforce": salesforce_port,
                "dynamics": dynamics_port,
            },
            use_tls=tls,
            seed=seed,
            size=size,
            services=list(services) or None,
        )
    except OSError as exc:
        raise click.ClickException(f"cannot start the sandbox: {exc}") from exc
    try:
        for name, service in sandbox.services.items():
            click.echo(f"{name:<11} {service.base_url}", err=True)
        click.echo(f"connection details: {data_dir / SANDBOX_FILE}", err=True)
        while not stopped.wait(0.5):
            if not sandbox.alive():
                raise click.ClickException("a service stopped unexpectedly; shutting down")
    finally:
        sandbox.stop()


@main.command()
@data_dir_option
@click.argument("file", type=click.File("r", encoding="utf-8"))
def load(data_dir: Path, file: Any) -> None:
    """Store the records of FILE (JSON Lines: {"service", "object", "record"}; '-' for stdin).

    Goes through the running sandbox's admin API when one runs on DATA_DIR, else straight to
    the databases. Records replace stored ones with the same key.
    """
    by_service: dict[str, list[dict[str, Any]]] = {}
    for number, line in enumerate(file, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            by_service.setdefault(item["service"], []).append(item)
        except (ValueError, KeyError, TypeError) as exc:
            raise click.ClickException(f"line {number}: {exc!r}") from exc
    unknown = sorted(set(by_service) - set(SERVICE_CLASSES))
    if unknown:
        raise click.ClickException(f"unknown services {unknown}; known: {sorted(SERVICE_CLASSES)}")
    running = _running_sandbox(data_dir)
    for name, items in by_service.items():
        if running is not None and name in running.info:
            counts: Counter[str] = Counter()
            for start_at in range(0, len(items), LOAD_CHUNK):
                body = "".join(
                    json.dumps(i) + "\n" for i in items[start_at : start_at + LOAD_CHUNK]
                )
                counts.update(
                    running.call(name, "POST", "load", data=body.encode()).json()["loaded"]
                )
            loaded = dict(counts)
        else:
            try:
                loaded = build_service(name, data_dir).load_records(items)
            except ValueError as exc:
                raise click.ClickException(str(exc)) from exc
        click.echo(json.dumps({"service": name, "loaded": loaded}))


@main.command()
@data_dir_option
@click.argument("service", type=click.Choice(sorted(SERVICE_CLASSES)))
@click.argument("obj", metavar="OBJECT")
def dump(data_dir: Path, service: str, obj: str) -> None:
    """Print what SERVICE stores for OBJECT as JSON Lines."""
    running = _running_sandbox(data_dir)
    if running is not None and service in running.info:
        response = running.call(service, "GET", f"dump/{obj}", stream=True)
        for line in response.iter_lines(decode_unicode=True):
            if line:
                click.echo(line)
        return
    store = build_service(service, data_dir).store
    try:
        for row in store.iterate(obj):
            click.echo(json.dumps(row, ensure_ascii=False, default=str))
    except KeyError as exc:
        raise click.ClickException(str(exc.args[0])) from exc


@main.command()
@data_dir_option
@click.option("--service", "services", multiple=True, type=click.Choice(sorted(SERVICE_CLASSES)))
def reset(data_dir: Path, services: tuple[str, ...]) -> None:
    """Remove every stored record (of the given services, default all)."""
    running = _running_sandbox(data_dir)
    for name in services or SERVICE_CLASSES:
        if running is not None and name in running.info:
            running.call(name, "POST", "reset")
        else:
            build_service(name, data_dir).reset()
        click.echo(f"{name}: reset")


@main.command()
@data_dir_option
def stats(data_dir: Path) -> None:
    """Calls per endpoint and outcome, from the running sandbox."""
    running = _running_sandbox(data_dir)
    if running is None:
        raise click.ClickException(f"no running sandbox on {data_dir}")
    for name in SERVICE_CLASSES:
        if name not in running.info:
            continue
        body = running.call(name, "GET", "stats").json()
        click.echo(f"{name}: {body['total']} calls")
        for row in body["calls"]:
            click.echo(
                f"  {row['method']:<6} {row['endpoint']:<60} {row['outcome']:<10} {row['calls']}"
            )


@main.command()
@data_dir_option
def env(data_dir: Path) -> None:
    """Print `export MSI_SANDBOX_...` lines for the running sandbox (for `eval "$(...)"`).

    meltano.yml's `sandbox` environment reads these variables, so
    `eval "$(msi-sandbox env)" && meltano --environment=sandbox run JOB` runs a job on it.
    """
    running = _running_sandbox(data_dir)
    if running is None:
        raise click.ClickException(f"no running sandbox on {data_dir}")
    for name, value in sorted(environment_variables(running.info).items()):
        click.echo(f"export {name}={shlex.quote(value)}")


class _RunningSandbox:
    """The admin API of a sandbox serving DATA_DIR, as described by its sandbox.json."""

    def __init__(self, info: dict[str, Any]) -> None:
        self.info = info
        self.session = requests.Session()
        # Our own CA, never the environment's bundle (requests would let it override verify).
        self.session.trust_env = False
        self.session.verify = info.get("ca_bundle") or True

    @property
    def pid(self) -> int:
        return int(self.info["pid"])

    def call(self, service: str, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = f"{self.info[service]['base_url']}/_sandbox/{path}"
        try:
            response = self.session.request(method, url, timeout=300, **kwargs)
        except requests.RequestException as exc:
            raise click.ClickException(f"{service}: the sandbox did not answer: {exc}") from exc
        if not response.ok:
            try:
                reason = response.json().get("error", response.text)
            except ValueError:
                reason = response.text
            raise click.ClickException(f"{service}: {response.status_code} {reason}")
        return response


def _running_sandbox(data_dir: Path) -> _RunningSandbox | None:
    """The sandbox serving `data_dir`, or None (no sandbox.json, or its process is gone)."""
    path = data_dir / SANDBOX_FILE
    try:
        info = json.loads(path.read_text())
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return _RunningSandbox(info)


if __name__ == "__main__":
    sys.exit(main())
