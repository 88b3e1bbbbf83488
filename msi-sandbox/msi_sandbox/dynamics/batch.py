"""$batch: multipart/mixed requests, change sets and continue-on-error."""

from __future__ import annotations

from typing import TYPE_CHECKING

from msi_sandbox.dynamics import errors

if TYPE_CHECKING:
    from msi_sandbox.dynamics.service import DynamicsService
    from msi_sandbox.dynamics.webapi import ApiRequest, ApiResponse


class Batch:
    def __init__(self, service: DynamicsService) -> None:
        self.service = service

    def handle(self, req: ApiRequest) -> ApiResponse:
        raise errors.bad_query("not yet")
