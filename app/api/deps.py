"""What a route works with, as FastAPI dependencies: each route names the services it uses in its signature
instead of reaching into ``app.state``. The getters are ``async`` so that FastAPI calls them on the event loop
(a plain ``def`` would cost a thread hop each); only ``job_or_404`` reads the store, so it runs in a thread."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from fastapi import Depends, Request
from typing_extensions import Annotated

from ..budget import MemoryBudget
from ..errors import NotFound
from ..jobs.job import Job, JobStatus
from ..rendering import Renderer
from ..service import Service
from .auth import NO_OWNER, Auth
from .fast import FastService
from .jobindex import RedisJobIndex, SqliteJobIndex
from .middleware import OWNER_SCOPE_KEY
from .streams import JobWatcher
from .views import JobView, job_view

JobIndex = Union[SqliteJobIndex, RedisJobIndex]


async def get_service(request: Request) -> Service:
    return request.app.state.service


async def get_auth(request: Request) -> Auth:
    return request.app.state.auth


async def get_owner(request: Request) -> str:
    """The requester's tenant (a hash of its API key; NO_OWNER on a server without keys)."""
    return request.scope.get(OWNER_SCOPE_KEY, NO_OWNER)


async def get_decode_budget(request: Request) -> MemoryBudget:
    return request.app.state.decode_budget


async def get_fast(request: Request) -> FastService:
    return request.app.state.fast


async def get_job_index(request: Request) -> JobIndex:
    return request.app.state.job_index


async def get_watcher(request: Request) -> JobWatcher:
    return request.app.state.watcher


ServiceDep = Annotated[Service, Depends(get_service)]
AuthDep = Annotated[Auth, Depends(get_auth)]
OwnerDep = Annotated[str, Depends(get_owner)]
DecodeBudgetDep = Annotated[MemoryBudget, Depends(get_decode_budget)]
FastDep = Annotated[FastService, Depends(get_fast)]
JobIndexDep = Annotated[JobIndex, Depends(get_job_index)]
WatcherDep = Annotated[JobWatcher, Depends(get_watcher)]


async def get_renderer(svc: ServiceDep, budget: DecodeBudgetDep) -> Renderer:
    return Renderer(svc, budget)


RendererDep = Annotated[Renderer, Depends(get_renderer)]


@dataclass(frozen=True)
class Caller:
    """The requester as the job routes see it: its tenant, the jobs it may see, and their views with links
    signed for their owner."""

    svc: Service
    auth: Auth
    owner: str  # a hash of its API key; NO_OWNER on a server without keys
    index: JobIndex  # its jobs, newest first (without API keys, under NO_OWNER: everyone's)

    def job(self, job_id: str) -> Job:
        """The job, if it exists and belongs to the requester's API key (another key's jobs are 404 too)."""
        job = self.svc.store.get(job_id)
        if job is None or job.status == JobStatus.RESERVED or (self.auth.enabled and job.owner != self.owner):
            raise NotFound("no job %s (unknown, deleted, or expired after its TTL)" % job_id)
        return job

    def view(self, job: Job) -> JobView:
        return signed_view(self.svc, self.auth, job)


def signed_view(svc: Service, auth: Auth, job: Job) -> JobView:
    """A job's view, its links signed for its owner: what the job routes, the streams and webhooks show."""
    return job_view(job, svc.store, lambda url: auth.sign(job.owner, job.id, url), lambda: svc.style_catalog().names)


async def get_caller(svc: ServiceDep, auth: AuthDep, who: OwnerDep, index: JobIndexDep) -> Caller:
    return Caller(svc, auth, who, index)


CallerDep = Annotated[Caller, Depends(get_caller)]


def job_or_404(job_id: str, caller: CallerDep) -> Job:
    """The ``{job_id}`` of the path, as the requester may see it (a plain ``def``: FastAPI runs it in a
    thread, as the store blocks)."""
    return caller.job(job_id)


JobDep = Annotated[Job, Depends(job_or_404)]
