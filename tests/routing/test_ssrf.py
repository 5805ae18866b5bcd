import pytest

from routing.ssrf import UnsafeUpstream, check_base_url


@pytest.mark.parametrize(
    "url", ["http://169.254.169.254/v1", "http://[fe80::1]/v1", "http://metadata.google.internal/"]
)
def test_link_local_and_metadata_addresses_are_always_refused(url):
    with pytest.raises(UnsafeUpstream):
        check_base_url(url, allow_loopback=True, allow_private=True)


def test_loopback_needs_the_platform_setting():
    # The refusal says which setting allows it: an operator should not have to read this module to find out.
    with pytest.raises(UnsafeUpstream, match=r"loopback .*\(TOLLWAY_ALLOW_LOOPBACK_UPSTREAMS=1 allows it\)$"):
        check_base_url("http://127.0.0.1:9101/v1", allow_loopback=False, allow_private=True)
    check_base_url("http://127.0.0.1:9101/v1", allow_loopback=True, allow_private=False)


def test_private_ranges_need_the_platform_setting():
    with pytest.raises(UnsafeUpstream, match=r"private .*\(TOLLWAY_ALLOW_PRIVATE_UPSTREAMS=1 allows it\)$"):
        check_base_url("http://10.0.0.5/v1", allow_loopback=True, allow_private=False)
    check_base_url("http://10.0.0.5/v1", allow_loopback=False, allow_private=True)


def test_credentials_in_the_url_and_odd_schemes_are_refused():
    with pytest.raises(UnsafeUpstream):
        check_base_url("http://user:pw@8.8.8.8/v1", allow_loopback=False, allow_private=False)
    with pytest.raises(UnsafeUpstream):
        check_base_url("file:///etc/passwd", allow_loopback=True, allow_private=True)
