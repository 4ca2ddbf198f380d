"""The served regions: AWS's OpsWorks CM regions by default, names fit for ARNs."""

import re

import pytest

from opscm import spec
from opscm.domain.regions import OPSWORKS_CM_REGIONS, check_regions


def test_the_default_is_every_endpoint_the_model_documents():
    documented = re.findall(r"opsworks-cm\.([a-z0-9-]+)\.amazonaws\.com", spec.service_model().documentation)
    assert sorted(OPSWORKS_CM_REGIONS) == sorted(documented)


def test_regions_are_kept_in_order_once_each():
    assert check_regions([" eu-west-1", "local-1", "eu-west-1"]) == ("eu-west-1", "local-1")


@pytest.mark.parametrize("names", [[], [""], ["EU-WEST-1"], ["eu_west_1"], ["-eu"], ["eu-"], ["a" * 65], ["a\x00"]])
def test_names_that_cannot_be_regions_are_refused(names):
    with pytest.raises(ValueError):
        check_regions(names)
