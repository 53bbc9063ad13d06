"""The add-on's key handling (keyring.py) against the backend's own key store, with no Blender."""

from __future__ import annotations

import importlib
import stat

import pytest
import zmq

from addon_pure.test_client import Outcomes, make_client  # noqa: F401 - make_client is a fixture
from addon_pure.zmq_server import ScriptedRouter, ok

pytestmark = pytest.mark.skipif(not zmq.has("curve"), reason="pyzmq built without CurveZMQ")


@pytest.fixture
def keyring(addon_pkg):
    return importlib.import_module("mofind_addon.keyring")


@pytest.mark.parametrize("env", [{"MOFIND_CONFIG": "/srv/mofind-config"}, {"XDG_CONFIG_HOME": "/home/x/.cfg"}, {}])
def test_the_addon_and_the_backend_agree_on_the_config_folder(keyring, monkeypatch, tmp_path, env):
    from mofind.paths import config_dir

    for name in ("MOFIND_CONFIG", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert keyring.config_dir() == config_dir()


def test_the_addon_finds_a_local_server_key_and_enrols_itself(keyring, monkeypatch, tmp_path):
    from mofind.server.keys import AllowedClients, KeyStore

    monkeypatch.setenv("MOFIND_CONFIG", str(tmp_path / "config"))
    assert keyring.local_server_key() == "" and keyring.enrol("x" * 40) is None  # no server has run yet
    store = KeyStore(tmp_path / "config" / "curve")
    store.ensure()  # what `mofind serve` does on its first start
    assert keyring.local_server_key() == store.server_public_key()
    public_file, secret_file = keyring.client_key_pair(tmp_path / "blender-keys")
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert keyring.client_key_pair(tmp_path / "blender-keys") == (public_file, secret_file)  # made once
    import zmq.auth

    public = zmq.auth.load_certificate(str(public_file))[0].decode()
    enrolled = keyring.enrol(public)
    assert keyring.enrol(public) == enrolled and len(list(store.clients_dir.glob("*.key"))) == 1
    assert public.encode() in AllowedClients(store.clients_dir).keys() and keyring.is_enrolled(public)


def test_a_refused_key_is_named_in_the_failure_at_once(make_client, client_mod, tmp_path):
    from zmq.auth.thread import ThreadAuthenticator

    from mofind.server.keys import AllowedClients, create_certificates

    server_public, server_secret = zmq.curve_keypair()
    (tmp_path / "clients").mkdir()
    _, stranger_secret = create_certificates(tmp_path, "stranger")
    with ScriptedRouter(lambda h, f, s: [ok(h, {})], curve_secret=server_secret) as server:
        auth = ThreadAuthenticator(server._context)
        auth.start()
        try:
            auth.configure_curve_callback("*", AllowedClients(tmp_path / "clients"))
            stranger = make_client(server.address, timeout_s=1.0, retries=3, server_key=server_public.decode(),
                                   client_keys=client_mod.load_client_keys(str(stranger_secret)))
            plain = make_client(server.address, timeout_s=1.0, retries=3)
            refused, mismatched = Outcomes(), Outcomes()
            stranger.wait_for(stranger.request("ping", **refused.kwargs()))
            plain.wait_for(plain.request("ping", **mismatched.kwargs()))
        finally:
            auth.stop()
    (failure,) = refused.timeouts
    assert "does not know this Blender's key" in failure.message and "mofind keys allow" in failure.message
    (failure,) = mismatched.timeouts
    assert "lets in only clients it knows" in failure.message
    assert server.requests == []
