"""The number format: base 2..16, digits reversed, problems written as +A+B+C+."""
import re

DIGITS = "0123456789ABCDEF"
SEP = "+"


def to_base(n: int, base: int) -> str:
    """Non-negative integer -> digits in `base`, most significant first."""
    if n < 0:
        raise ValueError(f"negative number {n}")
    if n == 0:
        return "0"
    out = []
    while n:
        n, r = divmod(n, base)
        out.append(DIGITS[r])
    return "".join(reversed(out))


def from_base(s: str, base: int) -> int:
    if not s:
        raise ValueError("empty number")
    n = 0
    for ch in s:
        d = DIGITS.find(ch)
        if not 0 <= d < base:
            raise ValueError(f"{ch!r} is not a base-{base} digit")
        n = n * base + d
    return n


def encode_number(n: int, base: int, reverse: bool = True) -> str:
    s = to_base(n, base)
    return s[::-1] if reverse else s


def decode_number(s: str, base: int, reverse: bool = True) -> int:
    return from_base(s[::-1] if reverse else s, base)


def num_digits(n: int, base: int) -> int:
    return len(to_base(n, base))


def format_prompt(a: int, b: int, base: int, reverse: bool = True) -> str:
    """`+A+B+`: what the model is given."""
    return f"{SEP}{encode_number(a, base, reverse)}{SEP}{encode_number(b, base, reverse)}{SEP}"


def format_problem(a: int, b: int, base: int, reverse: bool = True) -> str:
    """`+A+B+C+`: a full training sequence; the answer is `C+`."""
    return f"{format_prompt(a, b, base, reverse)}{encode_number(a + b, base, reverse)}{SEP}"


def parse_problem(line: str, base: int, reverse: bool = True, check_sum: bool = True) -> tuple[int, int, int]:
    """`+A+B+C+` -> (a, b, c); ValueError with a short reason if it is not one."""
    parts = line.split(SEP)
    if len(parts) != 5 or parts[0] or parts[4]:
        raise ValueError(f"not a {SEP}A{SEP}B{SEP}C{SEP} problem: {line[:40]!r}")
    a, b, c = (decode_number(p, base, reverse) for p in parts[1:4])
    if check_sum and a + b != c:
        raise ValueError(f"wrong sum in {line[:40]!r}: {a}+{b} is not {c}")
    return a, b, c


_DECIMAL = re.compile(r"[0-9]+")


def parse_decimal_problem(text: str) -> tuple[int, int]:
    """User input `1234+5678` (spaces allowed around +) -> (1234, 5678); ValueError says what is wrong."""
    s = text.strip()
    if not s:
        raise ValueError("empty problem")
    parts = [p.strip() for p in s.split("+")]
    if len(parts) > 2:
        raise ValueError(f"{s!r}: expected two operands a+b, got {len(parts)}")
    if len(parts) < 2:
        if s.startswith("-") or re.fullmatch(r"[0-9]+\s*-\s*[0-9]+", s):
            raise ValueError(f"{s!r}: negative numbers and subtraction are not supported")
        raise ValueError(f"{s!r}: expected a+b")
    for p in parts:
        if not p:
            raise ValueError(f"{s!r}: missing operand")
        if p.startswith("-"):
            raise ValueError(f"{s!r}: negative numbers are not supported")
        if re.fullmatch(r"[0-9]*\.[0-9]*", p):
            raise ValueError(f"{s!r}: decimals are not supported, only whole numbers")
        if not _DECIMAL.fullmatch(p):
            raise ValueError(f"{s!r}: {p!r} is not a non-negative decimal integer")
    return int(parts[0]), int(parts[1])
