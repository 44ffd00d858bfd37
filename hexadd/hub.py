"""The Hugging Face Hub: download by repo id (cached, usable offline)."""
from pathlib import Path

from .errors import ModelError


def download(repo_id: str, revision: str | None = None) -> Path:
    """Snapshot of a model repo; offline, the cached copy; with nothing cached, a one-line ModelError."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled,
                                        RepositoryNotFoundError, RevisionNotFoundError)
    at = f"{repo_id}@{revision}" if revision else repo_id
    try:
        return Path(snapshot_download(repo_id, revision=revision, repo_type="model"))
    except (LocalEntryNotFoundError, OfflineModeIsEnabled):
        raise ModelError(f"{at} is not in the local Hugging Face cache and the Hub cannot be reached (offline?)") from None
    except RevisionNotFoundError:
        raise ModelError(f"{repo_id} has no revision {revision!r}") from None
    except (RepositoryNotFoundError, GatedRepoError):
        raise ModelError(f"no model repo {repo_id} on the Hub, or no access to it (log in with `hf auth login`)") from None
    except HfHubHTTPError as e:
        raise ModelError(f"the Hub refused {at}: HTTP {e.response.status_code if e.response is not None else '?'}") from None
    except OSError as e:
        raise ModelError(f"could not download {at}: {type(e).__name__}") from None
