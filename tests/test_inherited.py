"""The one place that reads Twisted's private TLS options of an `ssl:` description, checked on real ones."""

from twisted.internet.testing import MemoryReactor

from testbed import server_certificate
from twisted_sse._inherited import tls_options


def test_an_ssl_description_gives_the_context_factory_it_names(tmp_path):
    """If Twisted renames `_sslContextFactory`, --workers can't serve ssl: listeners: this fails first."""
    pem, _ = server_certificate(tmp_path)
    options = tls_options(MemoryReactor(), f"ssl:8443:privateKey={pem}:certKey={pem}")
    from OpenSSL.SSL import Context

    assert isinstance(options.getContext(), Context)
