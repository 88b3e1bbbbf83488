"""`msi-sandbox`: run the imitated services and inspect or change what they hold."""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click
import requests

from msi_sandbox.generator import SIZES
from msi_sandbox.server import DEFAULT_PORTS, SANDBOX_FILE, SERVICE_CLASSES, build_service, start

DEFAULT_DATA_DIR = ".sandbox"
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
    sandbox = start(
        data_dir,
        host=host,
        ports={"marketo": marketo_port, "salesforce": salesforce_port, "dynamics": dynamics_port},
        use_tls=tls,
        seed=seed,
        size=size,
        services=list(services) or None,
    )
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    for name, service in sandbox.services.items():
        click.echo(f"{name:<11} {service.base_url}", err=True)
    click.echo(f"connection details: {data_dir / SANDBOX_FILE}", err=True)
    stopped.wait()
    sandbox.stop()


@main.command()
@data_dir_option
@click.argument("file", type=click.File("r", encoding="utf-8"))
def load(data_dir: Path, file: Any) -> None:
    """Store the records of FILE (JSON Lines: {"service", "object", "record"}; '-' for stdin)."""
    by_service: dict[str, list[dict[str, Any]]] = {}
    for number, line in enumerate(file, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            by_service.setdefault(item["service"], []).append(item)
        except (ValueError, KeyError) as exc:
            raise click.ClickException(f"line {number}: {exc}") from exc
    for name, items in by_service.items():
        if name not in SERVICE_CLASSES:
            raise click.ClickException(f"unknown service {name!r}")
        try:
            counts = build_service(name, data_dir).load_records(items)
        except KeyError as exc:
            raise click.ClickException(f"{name}: {exc}") from exc
        click.echo(json.dumps({"service": name, "loaded": counts}))


@main.command()
@data_dir_option
@click.argument("service", type=click.Choice(sorted(SERVICE_CLASSES)))
@click.argument("obj", metavar="OBJECT")
def dump(data_dir: Path, service: str, obj: str) -> None:
    """Print what SERVICE stores for OBJECT as JSON Lines."""
    store = build_service(service, data_dir).store
    try:
        rows = store.iterate(obj)
        for row in rows:
            click.echo(json.dumps(row, ensure_ascii=False, default=str))
    except KeyError as exc:
        raise click.ClickException(str(exc)) from exc


@main.command()
@data_dir_option
@click.option("--service", "services", multiple=True, type=click.Choice(sorted(SERVICE_CLASSES)))
def reset(data_dir: Path, services: tuple[str, ...]) -> None:
    """Remove every stored record (of the given services, default all)."""
    for name in services or SERVICE_CLASSES:
        build_service(name, data_dir).reset()
        click.echo(f"{name}: reset")


@main.command()
@data_dir_option
def stats(data_dir: Path) -> None:
    """Calls per endpoint and outcome, from the running sandbox."""
    info_path = data_dir / SANDBOX_FILE
    if not info_path.exists():
        raise click.ClickException(f"no running sandbox ({info_path} is missing)")
    info = json.loads(info_path.read_text())
    verify = info.get("ca_bundle") or True
    for name in SERVICE_CLASSES:
        if name not in info:
            continue
        response = requests.get(
            f"{info[name]['base_url']}/_sandbox/stats", verify=verify, timeout=30
        )
        response.raise_for_status()
        body = response.json()
        click.echo(f"{name}: {body['total']} calls")
        for row in body["calls"]:
            click.echo(
                f"  {row['method']:<6} {row['endpoint']:<60} {row['outcome']:<10} {row['calls']}"
            )


if __name__ == "__main__":
    sys.exit(main())
