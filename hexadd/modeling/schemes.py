"""Position schemes, one record each: what a scheme numbers, which table embeds the numbers, and how many
positions a problem needs. Every caller (config checks, model, decoding, the trainer, the length grid, ablations,
the model card) asks these records.

Only the standard library is imported: this file travels with published models (trust_remote_code).
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class Scheme:
    name: str
    block: bool             # positions restart at every number: each digit's index inside its own number
    table: str | None       # "learned" | "sinusoidal" (fixed) | None: no table, only attention distances
    windowed: bool = False  # attends only to keys within +-window block positions: any length runs

    def positions_needed(self, longest_number: int, tokens: int, max_offset: int = 0) -> int | None:
        """How many table positions (n_positions) a problem needs whose longest number has `longest_number`
        digits and whose row has `tokens` tokens; None: no table, any length."""
        if self.table is None:
            return None
        return longest_number + max_offset + 1 if self.block else tokens

    def positions_for(self, digits_a: int, digits_b: int, max_offset: int = 0) -> int | None:
        """positions_needed for `+A+B+C+` with operands of these lengths (the sum may have one digit more)."""
        answer = max(digits_a, digits_b) + 1
        return self.positions_needed(answer, 4 + digits_a + digits_b + answer, max_offset)


SCHEMES = {s.name: s for s in (
    Scheme("block", block=True, table="learned"),
    Scheme("learned", block=False, table="learned"),
    Scheme("sinusoidal", block=False, table="sinusoidal"),
    Scheme("block_sinusoidal", block=True, table="sinusoidal"),
    Scheme("block_relative", block=True, table=None, windowed=True),
)}
