"""The parent's link to its retry is written only to the very build that was retried: a build deleted and
created again under the same name (another uid) is not annotated."""

import pytest
from kubernetes.client import ApiClient

from buildfarm import constants as c
from buildfarm.errors import Conflict, NotFound
from buildfarm.kube.builds_admin import AdminGateway
from tests.support.farm import TIMEOUT, Farm


def test_annotate_refuses_a_build_created_again_under_the_same_name(
    farm: Farm, api_client: ApiClient
) -> None:
    admin = AdminGateway(api_client, (5.0, 10.0))
    farm.build("app")
    first = farm.get_build("app")
    farm.api.delete_namespaced_custom_object(
        c.GROUP, c.VERSION, farm.namespace, c.BUILD_PLURAL, "app", _request_timeout=TIMEOUT
    )
    with pytest.raises(NotFound):
        admin.annotate_build(first, {c.RETRIED_BY: "app-retry-1"})

    farm.build("app")
    with pytest.raises(Conflict):
        admin.annotate_build(first, {c.RETRIED_BY: "app-retry-1"})
    assert c.RETRIED_BY not in (farm.get_build("app").metadata.get("annotations") or {})

    admin.annotate_build(farm.get_build("app"), {c.RETRIED_BY: "app-retry-1"})
    assert farm.get_build("app").metadata["annotations"][c.RETRIED_BY] == "app-retry-1"
