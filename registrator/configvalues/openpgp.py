"""Just enough of OpenPGP's packet framing (RFC 4880 §4.2, §5.1) to tell a public-key
encrypted message from a plain value that merely happens to be valid base64: a random
base64 token starts with a byte that could begin such a message about once in fifty; with
the version and algorithm checked as well, about once in a million."""

from __future__ import annotations

import bz2
import zlib

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


_SKESK, _SIGNATURE, _ONE_PASS, _COMPRESSED, _LITERAL = 3, 2, 4, 8, 11
_ENCRYPTED_DATA = frozenset({9, 18, 20})  # SED, SEIPD, AEAD
_HEAD = 64  # bytes of a compressed packet inflated to see what it holds
_SYMMETRIC_ALGORITHMS = range(1, 14)  # IDEA ... Camellia-256
_S2K_TYPES = frozenset({0, 1, 3, 4})  # simple, salted, iterated+salted, argon2
_COMPRESSIONS = frozenset({0, 1, 2, 3})  # none, ZIP, ZLIB, BZip2
_LITERAL_FORMATS = frozenset(b"btul1m")
_ONE_PASS_LENGTH = 13
_SIGNING_ALGORITHMS = frozenset({1, 3, 17, 19, 22, 27, 28})
_HASHES = frozenset({1, 2, 3, 8, 9, 10, 11, 12, 14})


def _fits(data: bytes, start: int, length: int | None, *, whole: bool = False) -> bool:
    """A definite-length packet lies within `data` (with `whole`: ends exactly at its end)."""
    if length is None:
        return True
    end = start + length
    return end == len(data) if whole else end <= len(data)


def _inflated_head(algorithm: int, data: bytes) -> bytes | None:
    """The first bytes a compressed packet's body holds, or None when it does not inflate."""
    try:
        if algorithm == 0:
            return data[:_HEAD]
        if algorithm in {1, 2}:  # ZIP (raw deflate), ZLIB
            return zlib.decompressobj(-15 if algorithm == 1 else 15).decompress(data, _HEAD)
        return bz2.BZ2Decompressor().decompress(data, _HEAD)
    except (zlib.error, OSError, EOFError, ValueError):
        return None


def _follows(data: bytes, at: int, tags: frozenset[int]) -> bool:
    packet = _first_packet(data[at:])
    return packet is not None and packet[0] in tags


def other_message_kind(data: bytes, depth: int = 0) -> str | None:  # noqa: PLR0911
    """What kind of OpenPGP message `data` starts with, when it is not crypt's (a public-key
    encrypted one): "symmetrically encrypted", "compressed", "signed", "literal", or None
    when `data` does not look like an OpenPGP message. Each kind checks what its first
    packet must hold (and, where a field says little, what comes next), so that random
    bytes, such as a base64 API token decoded, are practically never taken for one."""
    packet = _first_packet(data)
    if packet is None or starts_public_key_encrypted(data):
        return None
    tag, start, length = packet
    body = data[start:start + 4]
    if len(body) < 4 or not _fits(data, start, length):
        return None
    if tag == _SKESK:
        minimum = {0: 4, 1: 12, 3: 13}.get(body[2], 99) if body[0] == 4 else 99
        ok = (length is not None and length >= minimum and body[1] in _SYMMETRIC_ALGORITHMS
              and body[3] in _HASHES and _follows(data, start + length, _ENCRYPTED_DATA))
        return "symmetrically encrypted" if ok else None
    if tag == _COMPRESSED:
        inner = _inflated_head(body[0], data[start + 1:]) if body[0] in _COMPRESSIONS else None
        ok = bool(inner) and depth < 1 and inner is not None and (
            starts_public_key_encrypted(inner) or other_message_kind(inner, depth + 1)
            in {"signed", "literal"})
        return "compressed" if ok else None
    if length is None:
        return None  # the kinds below are written with a definite length
    if tag == _ONE_PASS:
        return "signed" if body[0] == 3 and length == _ONE_PASS_LENGTH else None
    if tag == _SIGNATURE:
        ok = (body[0] in {4, 5, 6} and body[1] in {0, 1} and body[2] in _SIGNING_ALGORITHMS
              and body[3] in _HASHES)
        return "signed" if ok else None
    if tag == _LITERAL:
        ok = body[0] in _LITERAL_FORMATS and 2 + body[1] + 4 <= length
        return "literal" if ok else None
    return None
