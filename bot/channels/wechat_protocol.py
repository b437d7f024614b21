"""Protocol layer for a WeChat Official Account (微信公众号) message callback.

Pure functions and classes, no I/O and no web framework: an HTTP handler calls them.

Typical flow of a callback request (query string carries ``signature``, ``timestamp``, ``nonce`` and, in safe mode,
``encrypt_type=aes`` and ``msg_signature``):

* ``GET`` (URL verification): :func:`check_signature` then echo ``echostr`` back.
* ``POST`` plaintext mode: :func:`check_signature`, :func:`is_fresh`, :func:`parse_message`.
* ``POST`` safe mode: :func:`parse_encrypted_envelope`, :func:`check_msg_signature` (**before** decrypting: CBC with a
  fixed IV has no integrity of its own, the signature is what authenticates the ciphertext), :func:`is_fresh`,
  :meth:`WeChatCrypto.decrypt`, :func:`parse_message`; reply with :func:`encrypted_reply`.

Every protocol failure raises :class:`WeChatProtocolError`. Its ``reason`` is meant for logs only: answer the peer with
a uniform response whatever the reason, so that the errors cannot be used as a padding oracle.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import string
import struct
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from xml.sax.saxutils import escape as _xml_escape

import defusedxml
import defusedxml.ElementTree as DET
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = [
    "DEFAULT_MAX_BYTES",
    "REPLY_MAX_BYTES",
    "IncomingMessage",
    "WeChatCrypto",
    "WeChatProtocolError",
    "check_msg_signature",
    "check_signature",
    "encrypted_reply",
    "fit_utf8",
    "is_fresh",
    "msg_signature",
    "parse_encrypted_envelope",
    "parse_message",
    "split_utf8",
    "text_reply",
]

DEFAULT_MAX_BYTES = 64 * 1024
"""Largest callback body :func:`parse_message` accepts by default."""

REPLY_MAX_BYTES = 2048
"""WeChat's limit, in UTF-8 bytes, for the Content of a passive text reply."""

_BLOCK_SIZE = 32  # WeChat pads to 32 bytes, not to the AES block size of 16
_RANDOM_LEN = 16
_LEN_FIELD = 4
_KEY_CHARS = re.compile(r"[A-Za-z0-9+/]{43}")
_DIGITS = re.compile(r"[0-9]{1,12}")
_RANDOM_ALPHABET = string.ascii_letters + string.digits
_QRSCENE_PREFIX = "qrscene_"
# Characters XML 1.0 does not allow anywhere, not even in CDATA (lone surrogates included).
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_ZWJ = "\u200d"


class WeChatProtocolError(Exception):
    """Any failure to verify, decrypt or parse a WeChat callback; ``reason`` says which (for logs only)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --------------------------------------------------------------------------- signatures


def _sha1_sorted(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8", "surrogatepass")).hexdigest()


def _all_str(*values: object) -> bool:
    return all(isinstance(value, str) for value in values)


def _same_digest(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8", "surrogatepass"))


def check_signature(token: str, signature: str, timestamp: str, nonce: str) -> bool:
    """Verify the plain ``signature`` query parameter: sha1 of the sorted token, timestamp and nonce.

    Returns False (never raises) for missing (``None``) or otherwise malformed parameters.
    """
    if not _all_str(token, signature, timestamp, nonce):
        return False
    return _same_digest(_sha1_sorted(token, timestamp, nonce), signature)


def msg_signature(token: str, timestamp: str, nonce: str, encrypted: str) -> str:
    """The ``msg_signature`` of a safe-mode message: sha1 of the sorted token, timestamp, nonce and Encrypt."""
    return _sha1_sorted(token, timestamp, nonce, encrypted)


def check_msg_signature(token: str, msg_signature: str, timestamp: str, nonce: str, encrypted: str) -> bool:
    """Verify ``msg_signature`` against the Encrypt text in constant time; False (never raises) on bad input."""
    if not _all_str(token, msg_signature, timestamp, nonce, encrypted):
        return False
    return _same_digest(_sha1_sorted(token, timestamp, nonce, encrypted), msg_signature)


def is_fresh(timestamp: str, now: float, max_age: int = 300) -> bool:
    """True if ``timestamp`` (decimal Unix seconds) is within ``max_age`` seconds of ``now``, either way.

    Non-numeric, signed, empty or absurdly long timestamps are refused.
    """
    if not isinstance(timestamp, str) or not _DIGITS.fullmatch(timestamp):
        return False
    return abs(now - int(timestamp)) <= max_age


# --------------------------------------------------------------------------- encryption


def _decode_aes_key(encoding_aes_key: str) -> bytes:
    if not isinstance(encoding_aes_key, str) or not _KEY_CHARS.fullmatch(encoding_aes_key):
        raise ValueError("an EncodingAESKey is 43 characters of base64 ([A-Za-z0-9+/])")
    key = base64.b64decode(encoding_aes_key + "=", validate=True)
    if len(key) != 32:  # pragma: no cover - 43 base64 chars + "=" always give 32 bytes
        raise ValueError("an EncodingAESKey must decode to 32 bytes")
    return key


def _pkcs7_pad(data: bytes) -> bytes:
    pad = _BLOCK_SIZE - len(data) % _BLOCK_SIZE  # 1..32, a full block when already aligned
    return data + bytes([pad]) * pad


def _pkcs7_unpad(data: bytes) -> bytes:
    pad = data[-1]
    if not 1 <= pad <= _BLOCK_SIZE or pad > len(data):
        raise WeChatProtocolError("bad padding")
    if not hmac.compare_digest(data[-pad:], bytes([pad]) * pad):
        raise WeChatProtocolError("bad padding")
    return data[:-pad]


class WeChatCrypto:
    """WeChat message encryption (消息加解密, the WXBizMsgCrypt scheme): AES-256-CBC, IV = first 16 key bytes.

    ``encoding_aes_keys[0]`` is the current key, used to encrypt; later keys are previous ones, still accepted by
    :meth:`decrypt` while a key rotation settles. A malformed configuration raises ``ValueError``.
    """

    def __init__(self, token: str, encoding_aes_keys: list[str], appid: str) -> None:
        if isinstance(encoding_aes_keys, str):
            raise ValueError("encoding_aes_keys is a list of keys, current first")
        if not encoding_aes_keys:
            raise ValueError("at least one EncodingAESKey is required")
        if not isinstance(token, str) or not token:
            raise ValueError("token must be a non-empty string")
        if not isinstance(appid, str) or not appid:
            raise ValueError("appid must be a non-empty string")
        self._keys = tuple(_decode_aes_key(k) for k in encoding_aes_keys)
        self._token = token
        self._appid = appid
        self._appid_bytes = appid.encode("utf-8")

    @property
    def token(self) -> str:
        """The callback token."""
        return self._token

    @property
    def appid(self) -> str:
        """The AppID the plaintexts must end with."""
        return self._appid

    def __repr__(self) -> str:
        return f"WeChatCrypto(appid={self._appid!r}, keys={len(self._keys)})"

    def encrypt(self, plaintext: str, nonce: str, timestamp: str) -> tuple[str, str]:
        """Encrypt ``plaintext`` with the current key; return ``(Encrypt, msg_signature)``."""
        msg = plaintext.encode("utf-8")
        # 16 random alphanumeric bytes, as in Tencent's SDKs.
        random_prefix = "".join(secrets.choice(_RANDOM_ALPHABET) for _ in range(_RANDOM_LEN)).encode("ascii")
        data = _pkcs7_pad(random_prefix + struct.pack(">I", len(msg)) + msg + self._appid_bytes)
        key = self._keys[0]
        encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
        encrypted = base64.b64encode(encryptor.update(data) + encryptor.finalize()).decode("ascii")
        return encrypted, msg_signature(self._token, timestamp, nonce, encrypted)

    def decrypt(self, encrypted: str) -> str:
        """Decrypt an Encrypt value, trying each configured key in order.

        Verify the ``msg_signature`` first. Raises :class:`WeChatProtocolError` on any failure.
        """
        if not isinstance(encrypted, str | bytes):
            raise WeChatProtocolError("Encrypt must be a string")
        try:
            raw = base64.b64decode(encrypted, validate=True)
        except (binascii.Error, ValueError):
            raise WeChatProtocolError("bad base64") from None
        if len(raw) < _BLOCK_SIZE or len(raw) % 16:
            raise WeChatProtocolError("bad ciphertext length")
        reasons: list[str] = []
        for key in self._keys:
            try:
                return self._decrypt_with(key, raw)
            except WeChatProtocolError as exc:
                reasons.append(exc.reason)
        unique = list(dict.fromkeys(reasons))
        raise WeChatProtocolError(unique[0] if len(unique) == 1 else "no key fits: " + ", ".join(reasons))

    def _decrypt_with(self, key: bytes, raw: bytes) -> str:
        try:
            decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
            data = decryptor.update(raw) + decryptor.finalize()
        except ValueError:  # pragma: no cover - lengths are checked by the caller
            raise WeChatProtocolError("bad ciphertext length") from None
        content = _pkcs7_unpad(data)
        if len(content) < _RANDOM_LEN + _LEN_FIELD:
            raise WeChatProtocolError("bad length")
        (msg_len,) = struct.unpack(">I", content[_RANDOM_LEN : _RANDOM_LEN + _LEN_FIELD])
        start = _RANDOM_LEN + _LEN_FIELD
        if msg_len > len(content) - start:
            raise WeChatProtocolError("bad length")
        if content[start + msg_len :] != self._appid_bytes:
            raise WeChatProtocolError("wrong appid")
        try:
            return content[start : start + msg_len].decode("utf-8")
        except UnicodeDecodeError:
            raise WeChatProtocolError("message is not UTF-8") from None


# --------------------------------------------------------------------------- incoming XML


@dataclass(frozen=True)
class IncomingMessage:
    """A parsed callback message or event."""

    to_user: str
    """The Official Account's original ID (gh_...)."""
    from_user: str
    """The sender's OpenID."""
    create_time: int
    msg_type: str
    """Lowercase: 'text', 'event', 'image', 'voice', ..."""
    content: str = ""
    msg_id: str | None = None
    event: str | None = None
    """Lowercase: 'subscribe', 'unsubscribe', 'scan', 'click', 'view', ... or None for a non-event."""
    event_key: str | None = None
    """Menu key or QR scene; the 'qrscene_' prefix of subscribe-by-QR is removed. None when absent or empty."""
    fields: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), compare=False, repr=False)
    """Text of every leaf element of the message (PicUrl, MediaId, Recognition, ...), as sent."""

    @property
    def dedup_key(self) -> str:
        """Key for dropping WeChat's retries (it retries up to 3 times): MsgId, else sender, time and event."""
        if self.msg_id:
            return self.msg_id
        return f"{self.from_user}:{self.create_time}:{self.event}"


def _parse_xml(body: bytes | str, max_bytes: int) -> ET.Element:
    if isinstance(body, str):
        body = body.encode("utf-8", "surrogatepass")
    if not isinstance(body, bytes | bytearray | memoryview):
        raise WeChatProtocolError("body must be bytes")
    if len(body) > max_bytes:
        raise WeChatProtocolError("body too large")
    if not body.strip():
        raise WeChatProtocolError("empty body")
    try:
        root = DET.fromstring(bytes(body), forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except defusedxml.DTDForbidden:
        raise WeChatProtocolError("DTD forbidden") from None
    except defusedxml.EntitiesForbidden:
        raise WeChatProtocolError("entities forbidden") from None
    except defusedxml.DefusedXmlException:
        raise WeChatProtocolError("unsafe XML") from None
    except (ET.ParseError, ValueError, UnicodeError, RecursionError):
        raise WeChatProtocolError("malformed XML") from None
    if root.tag != "xml":
        raise WeChatProtocolError("root element is not <xml>")
    return root


def _text(root: ET.Element, tag: str) -> str | None:
    element = root.find(tag)
    if element is None:
        return None
    return element.text or ""


def _required(root: ET.Element, tag: str) -> str:
    value = _text(root, tag)
    if value is None or not value.strip():
        raise WeChatProtocolError(f"missing {tag}")
    return value.strip()


def parse_message(body: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> IncomingMessage:
    """Parse a (plaintext or decrypted) callback XML safely: no DTD, no entities, no external references."""
    root = _parse_xml(body, max_bytes)
    create_time = _required(root, "CreateTime")
    if not _DIGITS.fullmatch(create_time):
        raise WeChatProtocolError("bad CreateTime")
    msg_type = _required(root, "MsgType").lower()
    event: str | None = None
    event_key: str | None = None
    if msg_type == "event":
        event = _required(root, "Event").lower()
        event_key = (_text(root, "EventKey") or "").strip()
        if event == "subscribe" and event_key.startswith(_QRSCENE_PREFIX):
            event_key = event_key[len(_QRSCENE_PREFIX) :]
        event_key = event_key or None
    msg_id = (_text(root, "MsgId") or "").strip() or None
    fields = {child.tag: child.text or "" for child in root if len(child) == 0 and isinstance(child.tag, str)}
    return IncomingMessage(
        to_user=_required(root, "ToUserName"),
        from_user=_required(root, "FromUserName"),
        create_time=int(create_time),
        msg_type=msg_type,
        content=_text(root, "Content") or "",
        msg_id=msg_id,
        event=event,
        event_key=event_key,
        fields=MappingProxyType(fields),
    )


def parse_encrypted_envelope(body: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """Return the <Encrypt> text of a safe-mode (or compatible-mode) request body, with the same safety rules."""
    root = _parse_xml(body, max_bytes)
    return _required(root, "Encrypt")


# --------------------------------------------------------------------------- replies


def _cdata(text: str) -> str:
    """Wrap ``text`` in CDATA, splitting any ']]>' and dropping characters XML cannot carry."""
    text = _XML_ILLEGAL.sub("", text)
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def text_reply(to_user: str, from_user: str, content: str, create_time: int) -> str:
    """A passive text reply. ``to_user`` is the user's OpenID, ``from_user`` the account's original ID.

    ``content`` is sent as is: cut it first with :func:`fit_utf8` (WeChat refuses more than 2048 bytes).
    """
    return (
        "<xml>"
        f"<ToUserName>{_cdata(to_user)}</ToUserName>"
        f"<FromUserName>{_cdata(from_user)}</FromUserName>"
        f"<CreateTime>{int(create_time)}</CreateTime>"
        "<MsgType><![CDATA[text]]></MsgType>"
        f"<Content>{_cdata(content)}</Content>"
        "</xml>"
    )


def encrypted_reply(crypto: WeChatCrypto, xml: str, nonce: str, timestamp: str) -> str:
    """Encrypt a reply XML and wrap it in the safe-mode envelope (Encrypt, MsgSignature, TimeStamp, Nonce)."""
    encrypted, signature = crypto.encrypt(xml, nonce, timestamp)
    return (
        "<xml>"
        f"<Encrypt>{_cdata(encrypted)}</Encrypt>"
        f"<MsgSignature>{_cdata(signature)}</MsgSignature>"
        f"<TimeStamp>{_xml_escape(timestamp)}</TimeStamp>"
        f"<Nonce>{_cdata(nonce)}</Nonce>"
        "</xml>"
    )


# --------------------------------------------------------------------------- UTF-8 length limits


def _clings(ch: str) -> bool:
    """True for a code point that belongs with the one before it (combining mark, ZWJ, variation selector...)."""
    code = ord(ch)
    return (
        ch == _ZWJ
        or unicodedata.category(ch) in ("Mn", "Mc", "Me")  # combining marks (variation selectors are Mn)
        or 0x1F3FB <= code <= 0x1F3FF  # emoji skin tone modifiers
        or 0xE0020 <= code <= 0xE007F  # emoji tag sequences
    )


def _cut(text: str, limit: int) -> tuple[int, int]:
    """Where to cut ``text`` (whose UTF-8 is longer than ``limit``): ``(end of head, start of tail)``."""
    encoded = text.encode("utf-8")
    byte_cut = limit
    while byte_cut > 0 and encoded[byte_cut] & 0xC0 == 0x80:  # never inside a multi-byte sequence
        byte_cut -= 1
    end = len(encoded[:byte_cut].decode("utf-8"))
    # Prefer a line break in the second half of what fits.
    newline = text.rfind("\n", 0, end)
    if newline > 0 and newline >= end // 2:
        head_end = newline
        while head_end > 0 and text[head_end - 1] in "\r\n":
            head_end -= 1
        tail_start = newline + 1
        if head_end > 0:
            return head_end, tail_start
    # Else avoid separating a character from its combining marks / emoji modifiers, within reason.
    soft = end
    while soft > max(0, end - 16) and (_clings(text[soft]) or text[soft - 1] == _ZWJ):
        soft -= 1
    if soft > 0 and not (_clings(text[soft]) or text[soft - 1] == _ZWJ):
        end = soft
    return end, end


def _check_limit(limit: int) -> None:
    if limit < 4:
        raise ValueError("limit must be at least 4 bytes (the longest UTF-8 character)")


def fit_utf8(text: str, limit: int = REPLY_MAX_BYTES) -> str:
    """Return ``text`` cut so that its UTF-8 encoding is at most ``limit`` bytes.

    Never splits a character, and prefers to cut at a line break. Lone surrogates become U+FFFD.
    """
    _check_limit(limit)
    text = _SURROGATE.sub("\ufffd", text)
    if len(text.encode("utf-8")) <= limit:
        return text
    end, _ = _cut(text, limit)
    return text[:end]


def split_utf8(text: str, limit: int = REPLY_MAX_BYTES) -> list[str]:
    """Split ``text`` into non-empty pieces whose UTF-8 encodings are at most ``limit`` bytes each.

    Pieces break preferably at line breaks (the break itself is dropped) and never inside a character.
    """
    _check_limit(limit)
    rest = _SURROGATE.sub("\ufffd", text)
    pieces: list[str] = []
    while len(rest.encode("utf-8")) > limit:
        end, start = _cut(rest, limit)
        if rest[:end]:
            pieces.append(rest[:end])
        rest = rest[start:]
    if rest:
        pieces.append(rest)
    return pieces
