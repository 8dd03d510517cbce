"""The Hugging Face Hub side of publishing a dataset (synth/publish.py) and a trained model (train/push.py): repo ids,
the token, and one upload that never lets the token into a message.

The token comes only from `huggingface_hub.get_token()` (HF_TOKEN or `hf auth login`) and is never written.
`HfApi.upload_folder` (hf_xet's streamed pipeline in huggingface_hub 2.x, which replaced `upload_large_folder`)
skips every file whose remote oid equals the local one, so rerunning after a failed upload sends only what did
not arrive — as long as the folder is rebuilt byte for byte, which both callers do.
"""

import os
from pathlib import Path

from personas.errors import DramatisError


def check_repo(repo: str, flag: str = "--repo") -> None:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo)
    except HFValidationError as e:
        raise DramatisError(f"{flag} {repo!r}: not a Hub repo id ({e}); write it as user/name") from None
    if repo.count("/") != 1:
        raise DramatisError(f"{flag} {repo!r}: write it as user/name (your user or organization, then the repo name)")


def _offline() -> bool:
    from huggingface_hub import constants

    return (
        constants.is_offline_mode() or os.environ.get("HF_HUB_OFFLINE", "").upper() in constants.ENV_VARS_TRUE_VALUES
    )


def hub_token(what: str = "--dry-run") -> str:
    """The token for an upload, or a DramatisError saying how to get one; called before any long work."""
    from huggingface_hub import get_token

    token = get_token()
    if not token:
        raise DramatisError("no Hugging Face token: set HF_TOKEN or run `hf auth login`")
    if _offline():
        raise DramatisError(f"HF_HUB_OFFLINE is set: the Hub cannot be reached; unset it to upload, or use {what}")
    return token


def upload(folder: Path, repo: str, token: str, *, repo_type: str, private: bool, delete_patterns: list[str]) -> None:
    """Create the repo if missing and upload the folder as it is; a failure names the repo, never the token."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)  # held in memory only: nothing here writes it to a file or a message
    try:
        api.create_repo(repo, repo_type=repo_type, private=private, exist_ok=True)
        # delete_patterns: files of an earlier upload that this folder no longer has (another shard count, format
        # or weights layout) would otherwise stay in the repo.
        api.upload_folder(
            repo_id=repo,
            folder_path=folder,
            repo_type=repo_type,
            commit_message=f"Upload {folder.parent.name}",
            delete_patterns=delete_patterns,
        )
    except Exception as e:  # HTTP, auth, network, xet: the user needs the reason, whatever its type
        reason = f"{type(e).__name__}: {e}".replace(token, "***")
        raise DramatisError(
            f"{repo}: upload failed ({reason}); rerun the same command to resume: "
            "files already on the Hub are not sent again"
        ) from None
