"""TLS with the sandbox's own CA: verified with the CA, refused without it, valid for loopback."""

from __future__ import annotations

import ipaddress
import os
import socket
import ssl
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from cryptography import x509
from sandbox_frame import EchoHandle

from msi_sandbox import tls


def test_a_client_with_the_ca_verifies(echo: EchoHandle) -> None:
    assert echo.base_url.startswith("https://127.0.0.1:")
    response = echo.session.get(echo.base_url + "/api/ping", timeout=10)
    assert response.status_code == 200


def test_a_client_without_the_ca_fails_verification(echo: EchoHandle) -> None:
    session = requests.Session()
    session.trust_env = False  # the test session exports the sandbox CA; ignore it here
    with pytest.raises(requests.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
        session.get(echo.base_url + "/api/ping", timeout=10)


@pytest.mark.parametrize("server_name", ["127.0.0.1", "localhost"])
def test_the_handshake_verifies_for_both_loopback_names(echo: EchoHandle, server_name: str) -> None:
    context = ssl.create_default_context(cafile=str(echo.sandbox.ca_bundle))
    port = urlsplit(echo.base_url).port
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=server_name) as conn,
    ):
        assert conn.version() in {"TLSv1.2", "TLSv1.3"}


def test_a_wrong_host_name_is_refused(echo: EchoHandle) -> None:
    context = ssl.create_default_context(cafile=str(echo.sandbox.ca_bundle))
    port = urlsplit(echo.base_url).port
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        context.wrap_socket(raw, server_hostname="abc123.mktorest.com")


def test_certificate_names_and_file_modes(tmp_path: Path) -> None:
    ca_path = tls.ensure_certificates(tmp_path, ["127.0.0.1"])
    cert = x509.load_pem_x509_certificate((tmp_path / tls.CERT_FILE).read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(names.get_values_for_type(x509.DNSName)) == {"localhost"}
    assert set(names.get_values_for_type(x509.IPAddress)) == {ipaddress.ip_address("127.0.0.1")}
    ca = x509.load_pem_x509_certificate(ca_path.read_bytes())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.issuer == ca.subject
    assert os.stat(tmp_path / tls.KEY_FILE).st_mode & 0o777 == 0o600


def test_certificates_are_made_once(tmp_path: Path) -> None:
    first = tls.ensure_certificates(tmp_path, ["127.0.0.1"]).read_bytes()
    key = (tmp_path / tls.KEY_FILE).read_bytes()
    assert tls.ensure_certificates(tmp_path, ["127.0.0.1"]).read_bytes() == first
    assert (tmp_path / tls.KEY_FILE).read_bytes() == key
