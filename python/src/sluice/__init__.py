"""Sluice for Python: search the catalog, apply for data, run
differentially private jobs and get their signed releases as DataFrames.

>>> import sluice
>>> client = sluice.Client.from_env()          # SLUICE_URL, SLUICE_TOKEN
>>> release = client.submit("examples/jobs/income_by_sex.toml", agreement="agr_…")
>>> release.verify(client.public_key()).to_pandas()

Canonical JSON, manifest digests and release verification are implemented
here in pure Python and checked byte for byte against the Rust platform by
the test suite (docs/python.md).
"""

from .canonical import NotCanonical, canonical_json, digest_of, parse_canonical, parse_json
from .client import DEFAULT_URL, Client
from .errors import (
    ApiError,
    BadRequest,
    BudgetExhausted,
    Conflict,
    DatasetNotOpen,
    Forbidden,
    IngestRejected,
    InternalError,
    JobFailed,
    JobTimeout,
    ManifestInvalid,
    NotFound,
    PayloadTooLarge,
    QueryRejected,
    RateLimited,
    SchemaInvalid,
    SluiceError,
    Unauthenticated,
    UnexpectedResponse,
    VerificationError,
)
from .manifest import Manifest, ManifestError
from .models import (
    Agreement,
    Application,
    Budget,
    CreatedUser,
    Dataset,
    Estimate,
    Job,
    PublicKey,
    User,
    VersionAdded,
)
from .release import Release
from .verify import key_id_of, verify_audit_chain, verify_checkpoint, verify_release

__version__ = "0.1.0"

__all__ = [
    "Client",
    "DEFAULT_URL",
    "Manifest",
    "ManifestError",
    "Release",
    # views
    "Agreement",
    "Application",
    "Budget",
    "CreatedUser",
    "Dataset",
    "Estimate",
    "Job",
    "PublicKey",
    "User",
    "VersionAdded",
    # errors
    "SluiceError",
    "ApiError",
    "BadRequest",
    "SchemaInvalid",
    "ManifestInvalid",
    "IngestRejected",
    "QueryRejected",
    "Unauthenticated",
    "Forbidden",
    "DatasetNotOpen",
    "NotFound",
    "Conflict",
    "PayloadTooLarge",
    "RateLimited",
    "BudgetExhausted",
    "InternalError",
    "UnexpectedResponse",
    "VerificationError",
    "JobFailed",
    "JobTimeout",
    # canonical JSON and verification
    "canonical_json",
    "digest_of",
    "parse_json",
    "parse_canonical",
    "NotCanonical",
    "key_id_of",
    "verify_release",
    "verify_checkpoint",
    "verify_audit_chain",
]
