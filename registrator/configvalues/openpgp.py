"""Just enough of OpenPGP's packet framing (RFC 4880 §4.2, §5.1) to tell a public-key
encrypted message from a plain value that merely happens to be valid base64: a random
base64 token starts with a byte that could begin such a message about once in fifty; with
the version and algorithm checked as well, about once in a million."""

from __future__ import annotations

PKESK = 1  # public-key encrypted session key: the first packet of such a message
_VERSION = 3  # the PKESK version every OpenPGP v4 implementation, crypt's included, writes
# RSA (encrypt or sign), RSA encrypt-only, Elgamal, ECDH.
_ALGORITHMS = frozenset({1, 2, 16, 18})
_KEY_ID_BYTES = 8


def _first_packet(data: bytes) -> tuple[int, int, int | None] | None:
    """(tag, offset of the body, body length or None when indeterminate) of the packet at
    the start of `data`, or None when `data` does not start with a packet header."""
    if len(data) < 2 or not data[0] & 0x80:
        return None
    return _new_format(data) if data[0] & 0x40 else _old_format(data)


def _new_format(data: bytes) -> tuple[int, int, int | None] | None:
    tag, octet = data[0] & 0x3F, data[1]
    if octet < 192:
        return tag, 2, octet
    if octet < 224:
        return (tag, 3, ((octet - 192) << 8) + data[2] + 192) if len(data) > 2 else None
    if octet == 255:
        return (tag, 6, int.from_bytes(data[2:6], "big")) if len(data) >= 6 else None
    return tag, 2, None  # partial body length: never valid for a PKESK


def _old_format(data: bytes) -> tuple[int, int, int | None] | None:
    tag, length_type = (data[0] >> 2) & 0x0F, data[0] & 0x03
    if length_type == 3:
        return tag, 1, None
    size = 1 << length_type
    if len(data) < 1 + size:
        return None
    return tag, 1 + size, int.from_bytes(data[1:1 + size], "big")


def starts_public_key_encrypted(data: bytes) -> bool:
    """Whether `data` starts with the packet a public-key encrypted message starts with. A
    truncated message still counts (decrypting it then says it is corrupt)."""
    packet = _first_packet(data)
    if packet is None:
        return False
    tag, start, length = packet
    # Version (1 byte), key id, public-key algorithm (1 byte), then the encrypted key.
    head = 1 + _KEY_ID_BYTES + 1
    body = data[start:start + head]
    return (tag == PKESK and length is not None and length > head and len(body) == head
            and body[0] == _VERSION and body[-1] in _ALGORITHMS)
