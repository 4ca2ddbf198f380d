"""The opsworkscm service model, loaded once through botocore's loader.

The model files come from the ``botocore-a-la-carte-opsworkscm`` package; opscm
never ships its own copy.
"""

from __future__ import annotations

import functools
from pathlib import Path

from botocore.loaders import Loader
from botocore.model import ServiceModel

SERVICE_NAME = "opsworkscm"
API_VERSION = "2016-11-01"
# The files the aws CLI needs beside each other to offer `aws opsworks-cm ... wait`.
CLI_MODEL_FILES = ("service-2", "waiters-2", "paginators-1")


@functools.cache
def _loader() -> Loader:
    return Loader()


@functools.cache
def service_model() -> ServiceModel:
    data = _loader().load_service_model(SERVICE_NAME, "service-2", API_VERSION)
    return ServiceModel(data, service_name=SERVICE_NAME)


def model_file(type_name: str) -> Path:
    """Path of one of the installed model files (``service-2``, ``waiters-2``...)."""
    data_path = Path(SERVICE_NAME) / API_VERSION / type_name
    for search_path in _loader().search_paths:
        for suffix in (".json", ".json.gz"):
            candidate = Path(search_path) / (str(data_path) + suffix)
            if candidate.is_file():
                return candidate
    raise FileNotFoundError(f"botocore model file {data_path} not found; is botocore-a-la-carte-opsworkscm installed?")
