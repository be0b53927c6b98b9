"""A throwaway certificate authority and a server certificate for localhost and 127.0.0.1 (trustme)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["server_certificate"]


def server_certificate(workdir: Path, name: str = "server") -> tuple[Path, Path]:
    """Write `<name>.pem` (the key and certificate chain a server listens with) and `ca.pem` (what a
    client trusts) into `workdir`; returns (server pem, CA pem)."""
    import trustme

    ca = trustme.CA()
    server_pem, ca_pem = workdir / f"{name}.pem", workdir / "ca.pem"
    ca.issue_cert("localhost", "127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(server_pem))
    ca.cert_pem.write_to_path(str(ca_pem))
    return server_pem, ca_pem
