"""The one place that reads Twisted's private TLS options of an `ssl:` description, checked on real ones."""

import trustme
from twisted.internet.testing import MemoryReactor

from twisted_sse._inherited import tls_options


def test_an_ssl_description_gives_the_context_factory_it_names(tmp_path):
    """If Twisted renames `_sslContextFactory`, --workers can't serve ssl: listeners: this fails first."""
    ca = trustme.CA()
    pem = tmp_path / "server.pem"
    ca.issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(str(pem))
    options = tls_options(MemoryReactor(), f"ssl:8443:privateKey={pem}:certKey={pem}")
    from OpenSSL.SSL import Context

    assert isinstance(options.getContext(), Context)
