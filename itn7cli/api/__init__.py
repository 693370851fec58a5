"""The DS API v2 over GraphQL: the transport (httpx, the token's rate limit, retries), what an answer
means (`answers`), pages of dossiers kept as bytes until saved (`pages`) and the DS operations itn7
uses (`client`). Knows nothing of SQLite."""

from .answers import BAD_DATA, Answer, NotFoundError, PageError
from .client import DOSSIER_STATES, Changes, ChangesTarget, DSClient
from .pages import PAGE_SIZE, Page, Stamp
from .transport import DS_LIMIT, USER_AGENT, RateLimiter, RetryPolicy, retryable_status, shared_limiter

__all__ = ["BAD_DATA", "DOSSIER_STATES", "DS_LIMIT", "PAGE_SIZE", "USER_AGENT", "Answer", "Changes", "ChangesTarget",
           "DSClient", "NotFoundError", "Page", "PageError", "RateLimiter", "RetryPolicy", "Stamp",
           "retryable_status", "shared_limiter"]
