from tests.support.s3 import s3_server

__all__ = ["s3_server"]  # the session's versitygw, for every test here
