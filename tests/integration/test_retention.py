"""Pruning: finished tokens, old events and finished jobs go after their retention period;
an association still IN_PROGRESS and the certificates a CRL needs stay."""

from datetime import timedelta

import pytest
from botocore.exceptions import ClientError
from cryptography import x509

from opscm.mock import OpsWorksCMMock
from opscm.service import retention
from tests.support.clock import FakeClock
from tests.support.mock_client import mock_client
from tests.support.requests import create_server_params, make_csr


def test_old_tokens_and_events_are_pruned():
    clock = FakeClock()
    with OpsWorksCMMock(clock=clock) as mock:
        client = mock_client(mock)
        client.create_server(**create_server_params("keep", "Puppet"))
        mock.wait_for_jobs()
        csr = [{"Name": "PUPPET_NODE_CSR", "Value": make_csr("old")}]
        old = client.associate_node(ServerName="keep", NodeName="old", EngineAttributes=csr)["NodeAssociationStatusToken"]
        cert = client.describe_node_association_status(ServerName="keep", NodeAssociationStatusToken=old)["EngineAttributes"]
        serial = x509.load_pem_x509_certificate(cert[0]["Value"].encode()).serial_number
        client.disassociate_node(ServerName="keep", NodeName="old")
        clock.advance(timedelta(days=8))
        csr = [{"Name": "PUPPET_NODE_CSR", "Value": make_csr("new")}]
        new = client.associate_node(ServerName="keep", NodeName="new", EngineAttributes=csr)["NodeAssociationStatusToken"]

        pruned = retention.prune(mock.app.deps)
        assert pruned.tokens == 2 and pruned.jobs == 1  # the old association and disassociation; the create job

        with pytest.raises(ClientError) as caught:
            client.describe_node_association_status(ServerName="keep", NodeAssociationStatusToken=old)
        assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"
        assert client.describe_node_association_status(ServerName="keep", NodeAssociationStatusToken=new)[
            "NodeAssociationStatus"
        ] == "SUCCESS"
        # The revoked certificate stays in the CRL: revocations are the CA's, never pruned.
        server = mock.app.deps.server_cache.get("123456789012", "us-east-1", "keep")
        crl = mock.app.deps.engines["Puppet"].ca_document(server, "certificate_revocation_list", "ca")
        assert x509.load_pem_x509_crl(crl.encode()).get_revoked_certificate_by_serial_number(serial) is not None
        clock.advance(timedelta(days=83))
        assert retention.prune(mock.app.deps).events >= 1
        assert client.describe_events(ServerName="keep")["ServerEvents"] == []
