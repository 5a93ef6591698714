"""The ICE server list handed to clients, with TURN credentials minted per subscription."""

from __future__ import annotations

from softphone.config import Config
from softphone.protocol.models import IceServer
from softphone.server.turn import load_secret, mint_turn_credentials


class IceProvider:
    def __init__(self, config: Config) -> None:
        self._stun = list(config.ice.stun_urls)
        self._turn_urls = list(config.turn.urls)
        self.ttl = config.turn.ttl
        # Read the secret once at start so a missing file fails the server, not the first call.
        self._secret = load_secret(config.turn.secret_file) if self._turn_urls else None

    def servers(self, user: str) -> list[IceServer]:
        """TURN first (it works from anywhere), then STUN; aiortc uses the first of each."""
        servers: list[IceServer] = []
        if self._secret is not None:
            creds = mint_turn_credentials(self._secret, ttl=self.ttl, user=user)
            servers.append(
                IceServer(urls=self._turn_urls, username=creds.username, credential=creds.password)
            )
        if self._stun:
            servers.append(IceServer(urls=self._stun))
        return servers
