"""The number format: base 2..16, digits reversed, problems written as +A+B+C+."""
import re

DIGITS = "0123456789ABCDEF"
SEP = "+"
_FORMATS = {2: "b", 8: "o", 16: "X"}


LONGEST = 20_000  # digits an operand may have at the user's edge (decimal or hex): about 16,600 hex digits


def to_base(n: int, base: int) -> str:
    """Non-negative integer -> digits in `base`, most significant first."""
    if n < 0:
        raise ValueError(f"negative number {n}")
    if base in _FORMATS:  # Python's own conversion: linear in the length, where the loop below is quadratic
        return format(n, _FORMATS[base])
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
    if base in _FORMATS and all(ch in DIGITS[:base] for ch in s):
        return int(s, base)
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
_HEX = re.compile(r"0[xX][0-9a-fA-F]+")


def parse_decimal_problem(text: str) -> tuple[int, int]:
    """User input `1234+5678` (spaces allowed around +; an operand may be hexadecimal as 0x1F) -> (1234, 5678);
    ValueError says what is wrong."""
    s = text.strip()
    if not s:
        raise ValueError("empty problem")
    parts = [p.strip() for p in s.split("+")]
    if len(parts) > 2:
        raise ValueError(f"{s[:40]!r}: expected two operands a+b, got {len(parts)}")
    if len(parts) < 2:
        if s.startswith("-") or re.fullmatch(r"[0-9]+\s*-\s*[0-9]+", s):
            raise ValueError(f"{s[:40]!r}: negative numbers and subtraction are not supported")
        raise ValueError(f"{s[:40]!r}: expected a+b")
    for p in parts:
        if not p:
            raise ValueError(f"{s[:40]!r}: missing operand")
        if p.startswith("-"):
            raise ValueError(f"{s[:40]!r}: negative numbers are not supported")
        if re.fullmatch(r"[0-9]*\.[0-9]*", p):
            raise ValueError(f"{s[:40]!r}: decimals are not supported, only whole numbers")
        if not (_DECIMAL.fullmatch(p) or _HEX.fullmatch(p)):
            raise ValueError(f"{s[:40]!r}: {p[:20]!r} is not a non-negative integer (decimal, or hexadecimal as 0x1F)")
        digits = len(p) - 2 * bool(_HEX.fullmatch(p))
        if digits > LONGEST:
            raise ValueError(f"an operand of {digits:,} digits: at most {LONGEST:,} digits are supported")
    return tuple(int(p, 16) if _HEX.fullmatch(p) else _decimal(p) for p in parts)


def is_hex_problem(text: str) -> bool:
    """Both operands written in hexadecimal (0x...): the answer is shown in hexadecimal too."""
    parts = [p.strip() for p in text.strip().split("+")]
    return len(parts) == 2 and all(_HEX.fullmatch(p) for p in parts)


def _decimal(digits: str) -> int:
    import sys
    if len(digits) > sys.get_int_max_str_digits() > 0:  # Python's guard against slow conversions; LONGEST bounds it
        sys.set_int_max_str_digits(max(LONGEST + 1, 640))
    return int(digits)


def show(n: int, hexadecimal: bool = False) -> str:
    """A number as the user reads it: decimal, or 0x-prefixed hexadecimal."""
    if hexadecimal:
        return f"0x{n:X}"
    import sys
    if n.bit_length() > 3.3 * sys.get_int_max_str_digits() > 0:
        sys.set_int_max_str_digits(max(LONGEST + 2, 640))
    return str(n)
