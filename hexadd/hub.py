"""The Hugging Face Hub: a model card of measured results, push, and download by repo id.

    python -m hexadd.hub push MODEL_DIR REPO_ID [--private]

The token comes from HF_TOKEN or the login cache (`hf auth login`); it is handed to the client and
never printed, logged or written.
"""
import json
import math
from pathlib import Path

from .errors import ModelError

# What a published model folder holds; anything else in it stays local.
PUBLISHED = ["config.json", "generation_config.json", "model.safetensors", "model.py", "positions.py",
             "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "README.md", "metrics.jsonl",
             "eval_results.json", "certificate.json", "certificate_wrong.txt", "training_config.yaml", "*.png",
             "attention_visualizations/*.png"]


def download(repo_id: str, revision: str | None = None) -> Path:
    """Snapshot of a model repo; offline, the cached copy; with nothing cached, a one-line ModelError."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled,
                                        RepositoryNotFoundError, RevisionNotFoundError)
    at = f"{repo_id}@{revision}" if revision else repo_id
    try:
        return Path(snapshot_download(repo_id, revision=revision, repo_type="model"))
    except (LocalEntryNotFoundError, OfflineModeIsEnabled):
        raise ModelError(f"{at} is not in the local Hugging Face cache and the Hub cannot be reached (offline?)") from None
    except RevisionNotFoundError:
        raise ModelError(f"{repo_id} has no revision {revision!r}") from None
    except RepositoryNotFoundError:
        raise ModelError(f"no model repo {repo_id} on the Hub, or no access to it (log in with `hf auth login`)") from None
    except HfHubHTTPError as e:
        raise ModelError(f"the Hub refused {at}: {_status(e)}") from None
    except Exception as e:  # httpx2 connection errors are not OSErrors
        raise ModelError(f"could not download {at}: {type(e).__name__}") from None


def _status(e) -> str:
    code = e.response.status_code if getattr(e, "response", None) is not None else None
    return f"HTTP {code}" if code else type(e).__name__


# ---------------------------------------------------------------- the model card

def model_card(model_dir: Path, repo_id: str):
    """A ModelCard whose model-index holds the held-out exact match measured after training."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    config = json.loads((model_dir / "config.json").read_text())
    ev_path = model_dir / "eval_results.json"
    ev = json.loads(ev_path.read_text()) if ev_path.is_file() else None
    base, lo, hi = config["base"], config["min_operand"], config["max_operand"]
    dataset = f"held-out {lo}..{hi} addition, base {base}"
    results = []
    if ev:
        common = dict(task_type="text-generation", task_name="Integer addition", dataset_type="hexadd-addition",
                      dataset_name=dataset, metric_type="exact_match")
        results.append(EvalResult(**common, metric_value=ev["accuracy"], metric_name="Exact match (held-out)"))
        for cell in ev["by_length"]:
            results.append(EvalResult(**common, metric_value=cell["correct"] / cell["total"],
                                      metric_name=f"Exact match, {cell['digits_a']}+{cell['digits_b']} digits"))
    cert_path = model_dir / "certificate.json"
    cert = json.loads(cert_path.read_text()) if cert_path.is_file() else None
    if cert:
        how = "every problem" if cert["exhaustive"] else f"{cert['n']:,} problems sampled uniformly, seed {cert['seed']}"
        common = dict(task_type="text-generation", task_name="Integer addition", dataset_type="hexadd-addition",
                      dataset_name=f"{lo}..{hi} + {lo}..{hi} addition, base {base} ({how})",
                      metric_args={"n": cert["n"], "wrong": cert["wrong"], "exhaustive": cert["exhaustive"],
                                   **({} if cert["exhaustive"] else {"seed": cert["seed"]})})
        results[:0] = [
            EvalResult(**common, metric_type="exact_match", metric_value=1 - cert["error_rate"],
                       metric_name=f"Exact match, certificate ({cert['wrong']:,} wrong of {cert['n']:,})"),
            EvalResult(**common, metric_type="certified_error_rate_upper_95", metric_value=cert["upper_95"],
                       metric_name="Error rate, one-sided 95% upper bound")]
    data = ModelCardData(library_name="transformers", pipeline_tag="text-generation", model_name=repo_id,
                         tags=["hexadd", "arithmetic", "addition", "gpt2"], eval_results=results or None)

    from .numbers import format_problem, format_prompt
    a = min(4095, hi)  # FFF+1 in base 16: a carry through every digit
    example, prompt = format_problem(a, 1, base), format_prompt(a, 1, base)
    n_params = _parameter_count(model_dir)
    train_cfg = model_dir / "training_config.yaml"
    lines = [
        f"# {repo_id}", "",
        f"A GPT-2 trained from scratch to add integers {lo}..{hi}, written in base {base} with digits reversed "
        f"(least significant first). {n_params:,} parameters, {config['n_layer']} layers, {config['n_embd']} wide, "
        f"{config['n_head']} attention heads, {config['n_predict']} prediction heads, `{config['position_scheme']}` positions.",
        "", "## Format", "",
        f"A problem is `+A+B+C+`; the model is given the prompt `+A+B+` and writes `C+`. "
        f"Example: {a} + 1 → `{example}` (prompt `{prompt}`).",
        "Position ids are block positions: each digit's index inside its own number, `+` gets 0. "
        "The model computes them itself from `input_ids` when none are given.",
        "", "## Results", "",
    ]
    if cert:
        lines += [f"**Certificate:** {cert['n'] - cert['wrong']:,} of {cert['n']:,} problems right ({cert['wrong']:,} wrong), "
                  f"{'every problem' if cert['exhaustive'] else 'a uniform sample (seed ' + str(cert['seed']) + ')'} "
                  f"of operands {lo}..{hi}: error rate {cert['error_rate']:.3g}, one-sided 95% upper bound "
                  f"**{cert['upper_95']:.3g}**. Checked by one teacher-forced pass per problem (head-1 argmax at every "
                  "answer token, which is exactly greedy decoding); training problems count, since users ask them.", ""]
    if ev:
        lines += [f"Exact match on {ev['total']:,} held-out problems (no pair, in either order, seen in training): "
                  f"**{ev['accuracy']:.2%}** ({ev['correct']}/{ev['total']}), `{ev['mode']}` decoding, "
                  f"{ev['passes_per_answer']:.2f} forward passes per answer.", "",
                  f"| digits of a \\ b (base {base}) | " + " | ".join(str(b) for b in sorted({c['digits_b'] for c in ev['by_length']})) + " |",
                  "|---" * (1 + len({c['digits_b'] for c in ev['by_length']})) + "|"]
        for a in sorted({c["digits_a"] for c in ev["by_length"]}):
            cells = {c["digits_b"]: c for c in ev["by_length"] if c["digits_a"] == a}
            lines.append(f"| {a} | " + " | ".join(f"{cells[b]['correct'] / cells[b]['total']:.2%}" if b in cells else "-"
                                               for b in sorted({c['digits_b'] for c in ev['by_length']})) + " |")
    else:
        lines.append("No evaluation was recorded for this folder.")
    lines += [
        "", "## Use", "",
        "With the `hexadd` package installed (its import registers the model with the Auto classes):", "",
        "```bash", f"python3 inference.py --model {repo_id} 1234+5678", "```", "",
        "Without it, the model code published next to the weights is enough:", "",
        "```python",
        "import torch",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        f'model = AutoModelForCausalLM.from_pretrained("{repo_id}", trust_remote_code=True).eval()',
        f'tok = AutoTokenizer.from_pretrained("{repo_id}")',
        f'ids = torch.tensor([tok.encode("{prompt}")])',
        "answer = []",
        "with torch.no_grad():",
        "    for _ in range(8):  # greedy: block positions are recomputed from the whole sequence each step",
        "        next_id = model(ids).logits[0, -1].argmax()",
        "        if tok.convert_ids_to_tokens(int(next_id)) == \"+\":",
        "            break",
        "        answer.append(tok.convert_ids_to_tokens(int(next_id)))",
        "        ids = torch.cat([ids, next_id.view(1, 1)], dim=1)",
        f'print(int("".join(reversed(answer)), {base}))  # digits come least significant first',
        "```", "",
        "Do not use `generate()`: it numbers new tokens last+1, not by block position.",
    ]
    if train_cfg.is_file():
        lines += ["", "## Training config", "", "```yaml", train_cfg.read_text().rstrip(), "```"]
    if (model_dir / "training_curves.png").is_file():
        lines += ["", "![training curves](training_curves.png)"]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines) + "\n")


def _parameter_count(model_dir: Path) -> int:
    from safetensors import safe_open
    with safe_open(model_dir / "model.safetensors", "pt") as f:  # tied weights are stored once
        return sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())


# ---------------------------------------------------------------- push

def push(model_dir: str | Path, repo_id: str, private: bool = False, log=print) -> str:
    """Write the model card into `model_dir`, then create the repo and upload the folder. Returns the commit url."""
    from huggingface_hub import CommitOperationAdd, HfApi, get_token
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled, RepositoryNotFoundError
    from .loading import REPO_ID, check_complete

    model_dir = Path(model_dir)
    if not REPO_ID.match(repo_id):
        raise ModelError(f"{repo_id!r} is not a Hub repo id (user/name)")
    check_complete(model_dir, str(model_dir))
    token = get_token()
    if token is None:
        raise ModelError("not logged in to the Hugging Face Hub: run `hf auth login` or set HF_TOKEN; nothing was uploaded")

    card = model_card(model_dir, repo_id)
    # The card is uploaded from memory: a failed push leaves the folder exactly as it was.
    operations = [CommitOperationAdd(path_in_repo=rel, path_or_fileobj=str(model_dir / rel))
                  for rel in published_files(model_dir) if rel != "README.md"]
    operations.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=str(card).encode()))
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        info = api.create_commit(repo_id=repo_id, repo_type="model", operations=operations,
                                 commit_message=_commit_message(card))
    except OfflineModeIsEnabled:
        raise ModelError(f"HF_HUB_OFFLINE is set, so nothing was uploaded; {model_dir} is unchanged") from None
    except RepositoryNotFoundError:
        raise ModelError(f"the Hub has no repo {repo_id} that this token can write to; {model_dir} is unchanged") from None
    except HfHubHTTPError as e:
        code = e.response.status_code if e.response is not None else None
        why = {401: "the Hub rejected the token (401): log in again with `hf auth login`",
               403: f"no permission to write to {repo_id} (403)"}.get(code, f"the Hub refused the upload ({_status(e)})")
        raise ModelError(f"{why}; {model_dir} is unchanged") from None
    except Exception as e:  # httpx2.ConnectError and friends: not OSErrors
        raise ModelError(f"cannot reach the Hub ({type(e).__name__}); {model_dir} is unchanged") from None
    url = getattr(info, "commit_url", None) or str(info)
    log(f"pushed {model_dir}/ to {repo_id}: {url}")
    return url


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
    from . import cli
    p = cli.parser("Publish a trained model folder to the Hugging Face Hub.")
    sub = p.add_subparsers(dest="command", required=True)
    push_p = sub.add_parser("push", help="upload MODEL_DIR to REPO_ID with a generated model card")
    push_p.add_argument("model_dir")
    push_p.add_argument("repo_id")
    push_p.add_argument("--private", action="store_true")
    args = p.parse_args(argv)
    cli.run(lambda: push(args.model_dir, args.repo_id, args.private))


if __name__ == "__main__":
    main()
