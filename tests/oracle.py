"""A model that knows the answers: a random-weight HexAddForCausalLM whose head 1 is overridden by hooks
to write the sum computed with Python integers, from the tokens it actually reads.

It goes through the same entry points as a trained model (`model(...)` with a cache for decoding,
`model.transformer` and `model.lm_head` for the teacher-forced check), so encoding, certification,
the length grid and decoding can be checked exactly at any length. `flaw(a, b, answer)` may return a
different answer text (`C+`) to plant errors.
"""
import torch

from hexadd.modeling.model import HexAddConfig, HexAddForCausalLM
from hexadd.data.numbers import SEP, decode_number, encode_number
from hexadd.data.tokenizer import digit_token_ids, train_tokenizer

BASE = 16


def oracle(max_operand: int, n_positions: int = 128, flaw=None):
    tok = train_tokenizer([])
    config = HexAddConfig(vocab_size=len(tok), n_embd=8, n_layer=1, n_head=2, n_positions=n_positions, n_predict=1,
                          pad_token_id=tok.pad_token_id, bos_token_id=tok.pad_token_id, eos_token_id=tok.pad_token_id,
                          digit_token_ids=digit_token_ids(tok), base=BASE, max_operand=max_operand)
    torch.manual_seed(0)
    model = HexAddForCausalLM(config).eval()
    vocab, names = tok.get_vocab(), tok.convert_ids_to_tokens(list(range(len(tok))))
    state = {}

    def read(_, args, kwargs):
        ids, mask, cache = args[0], kwargs["attention_mask"], kwargs.get("cache")
        fresh = cache is None or cache.get_seq_length() == 0
        state["ids"] = ids if fresh else torch.cat([state["ids"], ids], dim=1)   # every token of each row so far
        state["mask"] = mask

    def answer_of(text: str) -> str:
        _, a, b, _ = text.split(SEP, 3)
        a, b = decode_number(a, BASE), decode_number(b, BASE)
        answer = encode_number(a + b, BASE) + SEP
        return answer if flaw is None else flaw(a, b, answer)

    def write(_, __, logits):
        ids, mask = state["ids"], state["mask"]
        T, fed = ids.shape[1], logits.shape[1]   # the logits cover the last tokens fed (a check computes fewer)
        rows, slots, tokens = [], [], []
        for r, (row, keep) in enumerate(zip(ids.tolist(), mask.tolist())):
            text = "".join(names[t] for t, m in zip(row, keep) if m)   # what the row really holds
            seps = [k for k, ch in enumerate(text) if ch == SEP]
            answer = answer_of(text) if len(seps) >= 3 else None
            seen = 0
            for g in range(T):
                seen += keep[g]
                if g < T - fed or not keep[g]:
                    continue
                written = seen - seps[2] - 1 if answer is not None else -1  # answer tokens read so far
                right_so_far = written >= 0 and answer.startswith(text[seps[2] + 1:seen])
                nxt = answer[written] if right_so_far and written < len(answer) else SEP  # in the prompt: not checked
                rows.append(r)
                slots.append(g - (T - fed))
                tokens.append(vocab[nxt])
        out = torch.full_like(logits, -1e4)
        out[rows, slots, tokens] = 1e4
        return out

    model.transformer.register_forward_pre_hook(read, with_kwargs=True)
    model.lm_head.register_forward_hook(write)
    return model, tok
