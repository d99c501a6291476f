from collections.abc import Iterator

import pytest

from tests.support.s3 import S3Server, running_s3_server


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One versitygw for the session; each test uses its own key prefix or bucket."""
    with running_s3_server(tmp_path_factory.mktemp("s3")) as server:
        yield server
