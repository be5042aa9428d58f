"""A JSON peek without `json`: the top-level scalar members of a small CNI config, and
how deeply it nests, in one pass over the bytes.

The `netplex` entry point needs three keys (`daemonSocket`, `cniVersion`, `addTimeout`)
before it knows which way a call goes, and `json` costs the exec'd process ~10 ms of
imports (`re`, `enum`, ...) that the shim path otherwise never pays. This reads only what
it must and gives up (returns None) on anything unusual: escapes in a wanted string,
a document that is not an object, more than `MAX_SCAN_BYTES`. The caller then uses
`json`, so a peek is never wrong, only sometimes unavailable. No imports at all.
"""

MAX_SCAN_BYTES = 256 * 1024
_QUOTE, _BACKSLASH, _COMMA, _COLON = 0x22, 0x5C, 0x2C, 0x3A
_OPEN = (0x7B, 0x5B)  # { [
_CLOSE = (0x7D, 0x5D)  # } ]
_SPACE = b" \t\r\n"
_SCALAR_END = b",}] \t\r\n"


def _string_end(raw: bytes, start: int) -> int:
    """The index of the quote closing the string whose opening quote is at `start`; -1
    if it never closes."""
    index = start + 1
    while True:
        end = raw.find(b'"', index)
        if end < 0:
            return -1
        slashes = 0
        back = end - 1
        while raw[back] == _BACKSLASH:
            slashes += 1
            back -= 1
        if slashes % 2 == 0:
            return end
        index = end + 1


def _skip_space(raw: bytes, index: int) -> int:
    while index < len(raw) and raw[index] in _SPACE:
        index += 1
    return index


def depth_of(raw: bytes) -> int:
    """How deeply arrays and objects nest in `raw` (strings skipped); linear, no recursion."""
    if raw.count(b"{") + raw.count(b"[") <= 1:
        return raw.count(b"{") + raw.count(b"[")
    depth = deepest = 0
    index = 0
    size = len(raw)
    while index < size:
        char = raw[index]
        if char == _QUOTE:
            end = _string_end(raw, index)
            if end < 0:
                return deepest
            index = end
        elif char in _OPEN:
            depth += 1
            deepest = max(deepest, depth)
        elif char in _CLOSE:
            depth = max(0, depth - 1)
        index += 1
    return deepest


def peek(raw: bytes, keys: tuple[str, ...]) -> dict[str, object] | None:
    """The members `keys` of the top-level object in `raw` that are strings (without
    escapes), numbers, booleans or null; None when `raw` cannot be peeked at (then parse
    it with `json`). A member given twice keeps its last value, as `json` does."""
    if len(raw) > MAX_SCAN_BYTES:
        return None
    wanted = {key.encode(): key for key in keys}
    found: dict[str, object] = {}
    index = _skip_space(raw, 0)
    if index >= len(raw) or raw[index] != 0x7B:
        return None
    depth = 0
    expect_key = False
    size = len(raw)
    while index < size:
        char = raw[index]
        if char == _QUOTE:
            end = _string_end(raw, index)
            if end < 0:
                return None
            if depth == 1 and expect_key:
                name = raw[index + 1 : end]
                expect_key = False
                index = _skip_space(raw, end + 1)
                if index >= size or raw[index] != _COLON:
                    return None
                index = _skip_space(raw, index + 1)
                if index >= size:
                    return None
                value_start = index
                if raw[index] == _QUOTE:
                    value_end = _string_end(raw, index)
                    if value_end < 0:
                        return None
                    index = value_end + 1
                    if name in wanted:
                        text = raw[value_start + 1 : value_end]
                        if _BACKSLASH in text:
                            return None
                        try:
                            found[wanted[name]] = text.decode()
                        except UnicodeDecodeError:
                            return None
                    continue
                if raw[index] in _OPEN:
                    continue  # the container is scanned like the rest
                while index < size and raw[index] not in _SCALAR_END:
                    index += 1
                if name in wanted:
                    scalar = _scalar(raw[value_start:index])
                    if scalar is _INVALID:
                        return None
                    found[wanted[name]] = scalar
                continue
            index = end + 1
            continue
        if char in _OPEN:
            depth += 1
            if depth == 1:
                expect_key = True
        elif char in _CLOSE:
            depth -= 1
            if depth == 0:
                return found if not raw[index + 1 :].strip() else None
        elif char == _COMMA and depth == 1:
            expect_key = True
        index += 1
    return None  # the object never closed


_INVALID = object()


def _scalar(token: bytes) -> object:
    if token == b"true":
        return True
    if token == b"false":
        return False
    if token == b"null":
        return None
    try:
        return int(token) if token.lstrip(b"-").isdigit() else float(token)
    except ValueError:
        return _INVALID
