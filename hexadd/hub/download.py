"""Downloading from the Hugging Face Hub: a model or dataset repo by id, from the Hub or the local cache. Low in
the package (loading and dataset use it); publishing (publish.py) sits on top."""
import re
from pathlib import Path

from ..common.errors import DataError, ModelError

REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def check_repo_id(repo_id: str, error) -> None:
    if not REPO_ID.match(repo_id):
        raise error(f"{repo_id!r} is not a Hub repo id (user/name)")


def download(repo_id: str, revision: str | None = None, repo_type: str = "model") -> Path:
    """Snapshot of a model or dataset repo; offline, the cached copy; with nothing cached, a one-line error."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled,
                                        RepositoryNotFoundError, RevisionNotFoundError)
    error = DataError if repo_type == "dataset" else ModelError
    at = f"{repo_id}@{revision}" if revision else repo_id
    check_repo_id(repo_id, error)
    try:
        return Path(snapshot_download(repo_id, revision=revision, repo_type=repo_type))
    except (LocalEntryNotFoundError, OfflineModeIsEnabled):
        raise error(f"{at} is not in the local Hugging Face cache and the Hub cannot be reached (offline?)") from None
    except RevisionNotFoundError:
        raise error(f"{repo_id} has no revision {revision!r}") from None
    except RepositoryNotFoundError:
        raise error(f"no {repo_type} repo {repo_id} on the Hub, or no access to it (log in with `hf auth login`)") from None
    except HfHubHTTPError as e:
        raise error(f"the Hub refused {at}: {status(e)}") from None
    except Exception as e:  # httpx2 connection errors are not OSErrors
        raise error(f"could not download {at}: {type(e).__name__}") from None


def status(e) -> str:
    code = e.response.status_code if getattr(e, "response", None) is not None else None
    return f"HTTP {code}" if code else type(e).__name__
