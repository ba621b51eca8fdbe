import socket

import pytest


def test_outside_network_is_blocked():
    from conftest import OutsideNetworkBlocked

    with pytest.raises(OutsideNetworkBlocked):
        socket.create_connection(("93.184.216.34", 80), timeout=2)


def test_loopback_is_allowed():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    client = socket.create_connection(server.getsockname(), timeout=2)
    client.close()
    server.close()
