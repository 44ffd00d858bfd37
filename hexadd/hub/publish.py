"""The Hugging Face Hub: push a model folder (with its card) or a data folder, download either by repo id.

    python -m hexadd.hub push MODEL_DIR REPO_ID [--private]
    python -m hexadd.hub push-data DATA_DIR REPO_ID [--private]
    python -m hexadd.hub push-space SPACE_ID [--model MODEL_DIR] [--private]

The token comes from HF_TOKEN or the login cache (`hf auth login`); it is handed to the client and
never printed, logged or written.
"""
from pathlib import Path

from .download import check_repo_id, status
from ..common.errors import DataError, ModelError
from .card import model_card
from ..data import dataset
from ..common.io import atomic_open
from ..common import cli

# What a published model folder holds; anything else in it stays local.
PUBLISHED = ["config.json", "generation_config.json", "model.safetensors", "model.py", "positions.py", "schemes.py",
             "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "README.md", "metrics.jsonl",
             "eval_results.json", "certificate.json", "certificate_wrong.txt", "bands.json", "training_config.yaml", "*.png",
             "attention_visualizations/*.png"]


# ---------------------------------------------------------------- push

def push(model_dir: str | Path, repo_id: str, private: bool = False, log=print) -> str:
    """Upload the model folder with a generated model card. Returns the commit url."""
    from ..inference.loading import check_complete

    model_dir = Path(model_dir)
    check_repo_id(repo_id, ModelError)
    check_complete(model_dir, str(model_dir))
    token = _token(ModelError)
    card = model_card(model_dir, repo_id)
    files = {rel: model_dir / rel for rel in published_files(model_dir) if rel != "README.md"}
    url = _upload(repo_id, "model", private, token, files, str(card).encode(), _commit_message(card), model_dir, ModelError)
    log(f"pushed {model_dir}/ to {repo_id}: {url}")
    return url


def push_data(data_dir: str | Path, repo_id: str, private: bool = False, log=print) -> str:
    """Upload a data folder as a dataset repo; once it is on the Hub, the local card names the repo,
    so models trained on it say where their data is. Returns the commit url."""

    data_dir = Path(data_dir)
    check_repo_id(repo_id, DataError)
    dataset.load(data_dir)  # refuse a damaged folder before anything is sent
    token = _token(DataError)
    meta = {**dataset.read_card(data_dir), "repo_id": repo_id}
    card = dataset.card_text(meta)
    files = {name: data_dir / name for name in dataset.SPLITS.values()}
    url = _upload(repo_id, "dataset", private, token, files, card.encode(),
                  f"Upload hexadd addition data ({', '.join(f'{k}: {v:,}' for k, v in meta['splits'].items())})",
                  data_dir, DataError)
    with atomic_open(data_dir / dataset.CARD) as f:
        f.write(card)
    log(f"pushed {data_dir}/ to the dataset repo {repo_id}: {url}")
    return url


# What the demo Space runs on besides what its README's front matter installs (Gradio): the project's pins, less
# the tools only its tests use.
TEST_ONLY = {"pytest", "hypothesis", "selenium"}


def push_space(space_id: str, model_dir: str | Path = "model", private: bool = False, log=print) -> str:
    """Upload the browser demo as a Gradio Space: app.py and the package beside it, the model under model/ (app.py's
    default), the pinned requirements, and a README whose front matter names the SDK, its version and app.py.
    Returns the commit url."""
    from ..inference.loading import check_complete

    model_dir = Path(model_dir)
    check_repo_id(space_id, ModelError)
    check_complete(model_dir, str(model_dir))
    token = _token(ModelError)
    package = Path(__file__).resolve().parents[1]  # hexadd/, all of its layers
    root = package.parent
    if not (root / "app.py").is_file():
        raise ModelError(f"push-space uploads app.py from a checkout of the project, and {root} has none")
    files = {"app.py": root / "app.py", "requirements.txt": _space_requirements(root)}
    files.update({f"hexadd/{p.relative_to(package).as_posix()}": p for p in sorted(package.rglob("*.py"))})
    # The page reads the config, weights and tokenizer, and the certificate and evaluations for its card section.
    files.update({f"model/{rel}": model_dir / rel for rel in published_files(model_dir)
                  if rel != "README.md" and not rel.endswith(".png")})
    url = _upload(space_id, "space", private, token, files, _space_card(root, space_id).encode(),
                  "Upload the hexadd demo", model_dir, ModelError)
    log(f"pushed the demo with {model_dir}/ to the Space {space_id}: {url}")
    return url


def _pins(path: Path) -> dict[str, str]:
    """{name: line} of a requirements file's pinned packages."""
    lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    return {line.split("==")[0].lower().replace("_", "-"): line for line in lines if "==" in line}


def _space_requirements(root: Path) -> bytes:
    pins = _pins(root / "requirements.txt")
    return "".join(f"{line}\n" for name, line in pins.items() if name not in TEST_ONLY).encode()


def _space_card(root: Path, space_id: str) -> str:
    gradio = _pins(root / "requirements-demo.txt")["gradio"].split("==")[1]
    return (f"---\ntitle: hexadd\nsdk: gradio\nsdk_version: {gradio}\napp_file: app.py\npython_version: '3.11'\n"
            "pinned: false\n---\n\n"
            f"# {space_id}\n\nA GPT-2 trained from scratch to add integers: type a+b, read its sum, how it wrote it and "
            "where each layer and head looked. The model is in `model/`, its card's results on the page.\n")


def _token(error) -> str:
    from huggingface_hub import get_token
    token = get_token()
    if token is None:
        raise error("not logged in to the Hugging Face Hub: run `hf auth login` or set HF_TOKEN; nothing was uploaded")
    return token


def _upload(repo_id, repo_type, private, token, files: dict, card: bytes, message: str, folder: Path, error) -> str:
    """One commit of `files` ({path in repo: local path, or the bytes themselves}) and the card, made from memory:
    a failed push leaves the local folder exactly as it was."""
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled, RepositoryNotFoundError

    operations = [CommitOperationAdd(path_in_repo=rel, path_or_fileobj=path if isinstance(path, bytes) else str(path))
                  for rel, path in files.items()]
    operations.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=card))
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True,
                        **({"space_sdk": "gradio"} if repo_type == "space" else {}))
        info = api.create_commit(repo_id=repo_id, repo_type=repo_type, operations=operations, commit_message=message)
    except OfflineModeIsEnabled:
        raise error(f"HF_HUB_OFFLINE is set, so nothing was uploaded; {folder} is unchanged") from None
    except RepositoryNotFoundError:
        raise error(f"the Hub has no {repo_type} repo {repo_id} that this token can write to; {folder} is unchanged") from None
    except HfHubHTTPError as e:
        code = e.response.status_code if e.response is not None else None
        why = {401: "the Hub rejected the token (401): log in again with `hf auth login`",
               403: f"no permission to write to {repo_id} (403)"}.get(code, f"the Hub refused the upload ({status(e)})")
        raise error(f"{why}; {folder} is unchanged") from None
    except Exception as e:  # httpx2.ConnectError and friends: not OSErrors
        raise error(f"cannot reach the Hub ({type(e).__name__}); {folder} is unchanged") from None
    return getattr(info, "commit_url", None) or str(info)


def published_files(model_dir: Path) -> list[str]:
    """Paths (relative, posix) of the files in `model_dir` that a push uploads."""
    from fnmatch import fnmatch
    files = sorted(p.relative_to(model_dir).as_posix() for p in model_dir.rglob("*") if p.is_file())
    return [f for f in files if any(fnmatch(f, pattern) and f.count("/") == pattern.count("/") for pattern in PUBLISHED)]


def _commit_message(card) -> str:
    results = card.data.eval_results or []
    cert = next((r for r in results if r.metric_type == "certified_error_rate_upper_95"), None)
    if cert is not None:
        return f"Upload hexadd model (certificate: 95% upper bound on the error rate {cert.metric_value:.3g})"
    return f"Upload hexadd model ({results[0].metric_value:.2%} held-out exact match)" if results else "Upload hexadd model"


def main(argv=None):
    p = cli.parser("Publish a trained model folder, or a data folder, or the demo with a model, to the Hugging Face Hub.")
    sub = p.add_subparsers(dest="command", required=True)
    for name, what, help in (("push", "model_dir", "upload MODEL_DIR to the model repo REPO_ID with a generated model card"),
                             ("push-data", "data_dir", "upload DATA_DIR (Parquet splits and card) to the dataset repo REPO_ID")):
        sp = sub.add_parser(name, help=help)
        sp.add_argument(what)
        sp.add_argument("repo_id")
        sp.add_argument("--private", action="store_true")
    sp = sub.add_parser("push-space", help="upload the browser demo (app.py) with MODEL_DIR to the Gradio Space SPACE_ID")
    sp.add_argument("space_id")
    sp.add_argument("--model", default="model", help="the model folder the Space serves (default: ./model)")
    sp.add_argument("--private", action="store_true")
    args = p.parse_args(argv)
    if args.command == "push-space":
        cli.run(lambda: push_space(args.space_id, args.model, args.private))
    elif args.command == "push":
        cli.run(lambda: push(args.model_dir, args.repo_id, args.private))
    else:
        cli.run(lambda: push_data(args.data_dir, args.repo_id, args.private))


if __name__ == "__main__":
    main()
