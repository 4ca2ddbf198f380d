"""opscm: a self-hosted implementation of the AWS OpsWorks CM API."""

__version__ = "0.1.0"
