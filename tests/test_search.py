"""The gate's error search: neighbours differ in one digit, the search walks to a planted error, and the gate
replays what it finds."""
import json
import types

import pytest
import torch

from hexadd.verify.certify import head1_correct, head1_margin
from hexadd.data.encoding import ProblemEncoder, int64_digits
from hexadd.inference.loading import load_model
from hexadd.data.samplers import Replay
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


def test_gate_search_finds_what_the_sample_missed_and_replays_it(monkeypatch):
    import hexadd.train.monitor as monitor

    target = digits(torch.tensor([[37, 58]]), width=2)
    monkeypatch.setattr(monitor, "fresh_margins", lambda model, tok, enc, pairs, autocast=None:
                        (digits(pairs, width=2) != target).sum(1).float() - 0.5)
    run = types.SimpleNamespace(model=types.SimpleNamespace(config=types.SimpleNamespace(min_operand=0, max_operand=99, base=10)),
                                tok=None, encoder=None, autocast=lambda: None,
                                accelerator=types.SimpleNamespace(process_index=0, num_processes=1))
    t = types.SimpleNamespace(stop_gate=20, seed=0, carry_share=0.0, sum_share=0.0, margin=0.0, replay=0.1, stop_search=0)
    replay, lines = Replay(), []
    assert monitor.gate(run, replay, 100, t, lines.append) is True  # 20 problems: 37 + 58 is not among them
    assert lines[-1] == "step 100: stopping gate, 0 wrong of 20 fresh problems; stopping" and not len(replay)
    t.stop_search = 4
    assert monitor.gate(run, replay, 100, t, lines.append) is False
    assert [37, 58] in replay.pairs.tolist() and len(replay) == 1
    assert lines[-1].startswith("step 100: stopping gate, 0 wrong of 20 fresh problems; its error search "
                                "(4 rounds from the 256 thinnest) found 1 wrong of ") and lines[-1].endswith("thinnest lead -0.50")
    t.margin = 1.0  # problems one digit off (lead 0.5) are thin: they are replayed too
    assert monitor.gate(run, Replay(), 100, t, lines.append) is False and "right by under 1 logits" in lines[-1]


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


def test_all_margins_puts_each_processs_share_back_in_order(monkeypatch):
    """Two processes: each checks every other pair; both must get every margin back against its own pair, or
    the search would keep the wrong problems."""
    import accelerate.utils

    import hexadd.train.monitor as monitor

    pairs = torch.arange(14).view(7, 2)
    monkeypatch.setattr(monitor, "fresh_margins", lambda model, tok, enc, p, autocast=None: p[:, 0].float())
    shares = [[0.0, 4.0, 8.0, 12.0], [2.0, 6.0, 10.0]]  # rank 0's and rank 1's, as gather_object lists them
    monkeypatch.setattr(accelerate.utils, "gather_object", lambda obj: shares)
    for rank in (0, 1):
        run = types.SimpleNamespace(model=None, tok=None, encoder=None, autocast=lambda: None,
                                    accelerator=types.SimpleNamespace(process_index=rank, num_processes=2))
        assert monitor.all_margins(run, pairs).tolist() == pairs[:, 0].float().tolist()


@pytest.mark.parametrize("until_right", [False, True])
def test_replay_keeps_only_what_is_still_missed_when_asked(monkeypatch, until_right):
    """With replay_until_right, each evaluation drops the replayed problems the model now gets right, so
    replay rows go to the ones it still misses; without, the buffer only grows."""
    import hexadd.train.monitor as monitor

    monkeypatch.setattr(monitor, "evaluate", lambda *a, **k: {"accuracy": 1.0, "errors": 0, "loss": 0.1,
                                                                "head_losses": [0.1, 0.1]})
    monkeypatch.setattr(monitor, "fresh_margins", lambda model, tok, enc, p, autocast=None:
                        torch.where(p[:, 0] == 3, -1.0, 0.5))  # 3 + b is wrong; the rest right by 0.5
    run = types.SimpleNamespace(model=types.SimpleNamespace(config=types.SimpleNamespace(min_operand=4, max_operand=99, base=10)),
                                held_split=None, tok=None, encoder=None, autocast=lambda: None,
                                accelerator=types.SimpleNamespace(process_index=0, num_processes=1),
                                scheduler=types.SimpleNamespace(get_last_lr=lambda: [1e-3]),
                                batches=types.SimpleNamespace(batch_size=8))
    out = types.SimpleNamespace(loss=torch.tensor(0.1), head_losses=torch.tensor([0.1, 0.1]))
    t = types.SimpleNamespace(fresh_eval=50, seed=0, carry_share=0.0, sum_share=0.0, margin=0.0, replay=0.1,
                              replay_until_right=until_right)
    replay = Replay()
    replay.add(torch.tensor([[1, 2], [3, 4], [5, 6], [3, 9]]))
    record = monitor.evaluation(run, replay, 100, t, None, out, 1.0)
    assert record["fresh_errors"] == 0  # the fresh sample's operands are 4..99: none is missed
    if until_right:
        assert replay.pairs.tolist() == [[3, 4], [3, 9]] and record["replay_learnt"] == 2
    else:
        assert len(replay) == 4 and "replay_learnt" not in record
    t.margin = 1.0  # right by 0.5 is thin: thin problems stay, and the fresh ones join
    monitor.evaluation(run, replay, 200, t, None, out, 1.0)
    assert len(replay) == (2 if until_right else 4) + 50


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
