"""The certificate's error search: neighbours differ in one digit, the search walks to a planted error; and what the
fresh checks find wrong is replayed."""
import json
import types

import pytest
import torch

from hexadd.verify.verdicts import head1_correct, head1_margin
from hexadd.data.encoding import ProblemEncoder, int64_digits
from hexadd.inference.loading import load_model
from hexadd.verify.search import neighbours, search


def digits(pairs, base=10, width=4):
    return torch.cat([int64_digits(pairs[:, 0], base, width)[0], int64_digits(pairs[:, 1], base, width)[0]], dim=1)


def test_neighbours_change_one_digit_stay_in_range_and_are_new():
    pairs = torch.tensor([[0, 0], [99, 99], [57, 8], [57, 8], [300, 41]])
    g = torch.Generator().manual_seed(0)
    kids = neighbours(pairs, 64, 0, 300, 10, g)
    assert kids.min() >= 0 and kids.max() <= 300
    assert len(torch.unique(kids, dim=0)) == len(kids) > 50
    assert not set(map(tuple, kids.tolist())) & set(map(tuple, pairs.tolist()))
    # Each is one digit away from some parent, in a or in b: numbers grow (0 -> 200) and shrink (57 -> 7).
    dist = (digits(kids)[:, None, :] != digits(pairs)[None, :, :]).sum(-1)
    assert (dist.min(dim=1).values == 1).all()
    rows = set(map(tuple, kids.tolist()))
    assert any(a >= 100 for a, b in rows if b == 0) and any(a < 10 for a, b in rows if b == 8)


def test_search_walks_from_thin_problems_to_a_planted_error():
    """Margins fall with each digit shared with 4,321 + 1,234, wrong only there: from a sample whose thinnest
    problems share a digit or two with it, the search must reach it, counting it once."""
    target = digits(torch.tensor([[4321, 1234]]))
    calls = []

    def margins_of(pairs):
        calls.append(len(pairs))
        return (digits(pairs) != target).sum(1).float() - 0.5

    g = torch.Generator().manual_seed(1)
    start = torch.randint(0, 10_000, (2000, 2), generator=g)
    m = margins_of(start)
    assert m.min() > 0
    found, found_m = search(margins_of, start, m, 12, 0, 9999, 10, g, population=32, children=16)
    assert found[found_m <= 0].tolist() == [[4321, 1234]]
    assert len(torch.unique(found, dim=0)) == len(found) and sum(calls[1:]) >= len(found)
    assert found_m.tolist() == margins_of(found).tolist()
    # No rounds, nothing evaluated; the same generator state, the same search.
    assert len(search(margins_of, start, m, 0, 0, 9999, 10, g)[0]) == 0
    again = search(margins_of, start, m, 12, 0, 9999, 10, torch.Generator().manual_seed(5), 32, 16)
    twice = search(margins_of, start, m, 12, 0, 9999, 10, torch.Generator().manual_seed(5), 32, 16)
    assert torch.equal(again[0], twice[0]) and torch.equal(again[1], twice[1])


def damaged(tiny_run):
    """The tiny model with noise on its weights, so that it has some errors (it may have none of its own)."""
    model, tok = load_model(str(tiny_run / "model"))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05 * p.std())
    return model, tok


def test_search_finds_only_a_real_models_real_errors(tiny_run):
    """On the damaged tiny model (0..99 base 10, checked exhaustively): every problem the search calls wrong is
    wrong by greedy decoding, and from a sample with none it still finds some."""
    model, tok = damaged(tiny_run)
    g = torch.Generator().manual_seed(0)
    encoder = ProblemEncoder(tok, 10, True, 99)
    grid = torch.cartesian_prod(torch.arange(100), torch.arange(100))
    wrong = ~head1_correct(model, encoder(grid[:, 0], grid[:, 1]))
    assert 0 < int(wrong.sum()) < 500, int(wrong.sum())
    start = grid[~wrong][torch.randperm(int((~wrong).sum()), generator=g)[:300]]

    def margins_of(pairs):
        return head1_margin(model, encoder(pairs[:, 0], pairs[:, 1]))

    found, found_m = search(margins_of, start, margins_of(start), 5, 0, 99, 10, g, population=32, children=8)
    hits = found[found_m <= 0]
    assert len(hits) and all(wrong[a * 100 + b] for a, b in hits.tolist())
    assert int((found_m > 0).sum()) == int((~wrong[found[:, 0] * 100 + found[:, 1]]).sum())


def test_wrong_pairs_puts_each_processs_share_back_in_order(monkeypatch):
    """Two processes: each checks every other pair; both must get every verdict back against its own pair, or
    the replay would take right problems for wrong ones."""
    import accelerate.utils

    import hexadd.train.monitor as monitor

    pairs = torch.arange(14).view(7, 2)
    monkeypatch.setattr(monitor, "pair_verdicts", lambda model, tok, enc, p, autocast=None: (p[:, 0] % 4 != 0, None))
    shares = [[False, True, True, False], [True, False, True]]  # rank 0's (pairs 0, 2, 4, 6) and rank 1's (1, 3, 5)
    monkeypatch.setattr(accelerate.utils, "gather_object", lambda obj: shares)
    for rank in (0, 1):
        run = types.SimpleNamespace(model=None, tok=None, encoder=None, autocast=lambda: None,
                                    accelerator=types.SimpleNamespace(process_index=rank, num_processes=2))
        assert monitor.wrong_pairs(run, pairs).tolist() == [[0, 1], [6, 7], [12, 13]]


@pytest.mark.parametrize("replay_share", [0.1, 0.0])
def test_evaluation_replays_the_fresh_samples_wrong_problems(monkeypatch, replay_share):
    """Each evaluation checks a fresh sample; its wrong problems join the replay (when the mixture replays), and
    the record counts them."""
    import hexadd.train.monitor as monitor
    from hexadd.train.mixture import Replay

    monkeypatch.setattr(monitor, "split_accuracy", lambda *a, **k: {"accuracy": 1.0, "errors": 0, "loss": 0.1,
                                                                     "head_losses": [0.1, 0.1]})
    monkeypatch.setattr(monitor, "pair_verdicts", lambda model, tok, enc, p, autocast=None: (p[:, 0] != 3, None))
    run = types.SimpleNamespace(model=types.SimpleNamespace(config=types.SimpleNamespace(min_operand=3, max_operand=12, base=10)),
                                held_split=None, tok=None, encoder=None, autocast=lambda: None,
                                accelerator=types.SimpleNamespace(process_index=0, num_processes=1),
                                scheduler=types.SimpleNamespace(get_last_lr=lambda: [1e-3]),
                                batches=types.SimpleNamespace(batch_size=8))
    out = types.SimpleNamespace(loss=torch.tensor(0.1), head_losses=torch.tensor([0.1, 0.1]))
    cfg = types.SimpleNamespace(checks=types.SimpleNamespace(fresh_eval=200, families={}),
                                training=types.SimpleNamespace(seed=0, mixture={"replay": replay_share}))
    replay = Replay()
    record = monitor.evaluation(run, replay, 100, cfg, None, out, 1.0)
    wrong = record["fresh_errors"]
    assert 5 < wrong < 40 and record["fresh_total"] == 200 and record["fresh_accuracy"] == 1 - wrong / 200  # a = 3: 1 in 10
    assert len(replay) == (wrong if replay_share else 0) and (replay.pairs[:, 0] == 3).all()
    assert record["replay_size"] == len(replay)


def test_certificate_search_finds_errors_its_sample_did_not(tiny_run, tmp_path):
    """A sample too small to see the damaged model's errors; the search after it finds some, each really wrong
    (the decoded answer is not the sum), and stores them beside the sample's own count, which it leaves alone."""
    from hexadd.verify.certificate import report, save, summary
    from hexadd.verify.certify import certify

    model, tok = damaged(tiny_run)
    encoder = ProblemEncoder(tok, 10, True, 99)
    grid = torch.cartesian_prod(torch.arange(100), torch.arange(100))
    wrong = {tuple(p) for p in grid[~head1_correct(model, encoder(grid[:, 0], grid[:, 1]))].tolist()}
    seed = next(s for s in range(100) if certify(model, tok, 40, seed=s, progress=False).wrong == 0)
    cert = certify(model, tok, 40, seed=seed, progress=False, search_rounds=6)
    assert cert.wrong == 0 and cert.n == 40  # the sample saw none
    s = cert.search
    assert s["wrong"] > 0 and s["rounds"] == 6 and s["from_thinnest"] == 40 and s["evaluated"] > 40
    for line in s["examples"]:  # "a+b=answer (expected c)", decoded
        a_b, rest = line.split("=", 1)
        a, b = map(int, a_b.split("+"))
        assert (a, b) in wrong and rest.split(" ")[0] != str(a + b)
    assert "so the model is not exact" in report(cert) and summary(cert)["search_wrong"] == s["wrong"]
    stored = json.loads(save(cert, tmp_path).read_text())
    assert stored["search"]["wrong"] == s["wrong"] and "pool" not in stored
    plain = certify(model, tok, 40, seed=seed, progress=False)
    assert plain.search is None and "search" not in plain.to_json() and "error search" not in report(plain)


def test_shards_of_a_distributed_certificate_search_from_all_their_thinnest(tiny_run):
    """Each process keeps the thinnest of its own share; merged, the search starts from the thinnest of all,
    as one process checking everything would."""
    from hexadd.verify.certificate import merge
    from hexadd.verify.certify import certify, search_errors

    model, tok = damaged(tiny_run)
    whole = certify(model, tok, 3000, seed=4, batch_size=500, progress=False, search_rounds=3)
    parts = [certify(model, tok, 3000, seed=4, batch_size=500, rank=r, world=2, progress=False, search_rounds=3)
             for r in (0, 1)]
    assert all(p.search is None and p.pool is not None for p in parts)  # shards leave the search to the merge
    cert = merge(parts)
    search_errors(model, tok, cert, 3)
    assert cert.n == whole.n and cert.wrong == whole.wrong
    start = sorted(map(tuple, cert.pool[0][torch.argsort(cert.pool[1], stable=True)[:256]].tolist()))
    assert start == sorted(map(tuple, whole.pool[0].tolist()))
    assert cert.search["wrong"] == whole.search["wrong"] and cert.search["evaluated"] == whole.search["evaluated"]
