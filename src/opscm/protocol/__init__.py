"""The OpsWorks CM wire protocol (JSON 1.1 + SigV4), driven by the service model."""
