"""The WeChat Official Account protocol layer: signatures, WXBizMsgCrypt encryption, safe XML, replies."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import struct
from xml.sax.saxutils import escape as _escape

import defusedxml.ElementTree as DET
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.channels.wechat_protocol import (
    IncomingMessage,
    WeChatCrypto,
    WeChatProtocolError,
    check_msg_signature,
    check_signature,
    encrypted_reply,
    fit_utf8,
    is_fresh,
    msg_signature,
    parse_encrypted_envelope,
    parse_message,
    split_utf8,
    text_reply,
)

# --------------------------------------------------------------------------- Tencent's published sample
# The fixed vector of Tencent's WXBizMsgCrypt SDK samples (C#/PHP/Java "Sample" files) and of the 企业微信
# "加解密方案说明" page (developer.work.weixin.qq.com/document/path/90968). Official Accounts use the same scheme;
# the Official Account SDK sample itself only round-trips random ciphertexts, so this is the published fixed vector.
TX_TOKEN = "QDG6eK"
TX_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
TX_APPID = "wx5823bf96d3bd56c7"
TX_MSG_SIGNATURE = "477715d11cdb4164915debcba66cb864d751f3e6"
TX_TIMESTAMP = "1409659813"
TX_NONCE = "1372623149"
TX_ENCRYPT = (
    "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvu"
    "JTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+Ltw"
    "Gc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t"
    "9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAV"
    "e0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q=="
)
TX_REQUEST_BODY = (
    f"<xml><ToUserName><![CDATA[{TX_APPID}]]></ToUserName><Encrypt><![CDATA[{TX_ENCRYPT}]]></Encrypt></xml>"
).encode()
# The sample's URL verification (VerifyURL) vector.
TX_VERIFY_SIGNATURE = "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3"
TX_VERIFY_TIMESTAMP = "1409659589"
TX_VERIFY_NONCE = "263014780"
TX_VERIFY_ECHOSTR = "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ=="

# Keys of our own for the other tests.
KEY_OLD = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR"
KEY_NEW = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
APPID = "wx49f0ab532d5d035a"
TOKEN = "weihai-token"


def _raw_key(encoding_aes_key: str) -> bytes:
    return base64.b64decode(encoding_aes_key + "=")


def _aes_encrypt_raw(encoding_aes_key: str, data: bytes) -> str:
    """Encrypt already-laid-out, already-padded bytes: for building malformed ciphertexts."""
    key = _raw_key(encoding_aes_key)
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(data) + encryptor.finalize()).decode()


def _aes_decrypt_raw(encoding_aes_key: str, encrypted: str) -> bytes:
    key = _raw_key(encoding_aes_key)
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    return decryptor.update(base64.b64decode(encrypted)) + decryptor.finalize()


def _layout(msg: bytes, appid: str = APPID) -> bytes:
    return b"0123456789abcdef" + struct.pack(">I", len(msg)) + msg + appid.encode()


def _pad32(data: bytes) -> bytes:
    pad = 32 - len(data) % 32
    return data + bytes([pad]) * pad


@pytest.fixture
def crypto() -> WeChatCrypto:
    return WeChatCrypto(TOKEN, [KEY_NEW], APPID)


# --------------------------------------------------------------------------- official vector


def test_tencent_vector_msg_signature() -> None:
    assert msg_signature(TX_TOKEN, TX_TIMESTAMP, TX_NONCE, TX_ENCRYPT) == TX_MSG_SIGNATURE
    assert check_msg_signature(TX_TOKEN, TX_MSG_SIGNATURE, TX_TIMESTAMP, TX_NONCE, TX_ENCRYPT)
    assert not check_msg_signature(TX_TOKEN, TX_MSG_SIGNATURE, TX_TIMESTAMP, "1372623150", TX_ENCRYPT)
    assert not check_msg_signature("QDG6eL", TX_MSG_SIGNATURE, TX_TIMESTAMP, TX_NONCE, TX_ENCRYPT)


def test_tencent_vector_decrypts_to_the_published_message() -> None:
    crypto = WeChatCrypto(TX_TOKEN, [TX_KEY], TX_APPID)
    encrypted = parse_encrypted_envelope(TX_REQUEST_BODY)
    assert encrypted == TX_ENCRYPT
    assert check_msg_signature(crypto.token, TX_MSG_SIGNATURE, TX_TIMESTAMP, TX_NONCE, encrypted)
    plaintext = crypto.decrypt(encrypted)
    assert plaintext.startswith("<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>")
    message = parse_message(plaintext.encode())
    assert message.to_user == TX_APPID
    assert message.from_user == "mycreate"
    assert message.create_time == 1409659813
    assert message.msg_type == "text"
    assert message.content == "hello"
    assert message.msg_id == "4561255354251345929"
    assert message.dedup_key == "4561255354251345929"
    assert message.fields["AgentID"] == "218"


def test_tencent_url_verification_vector() -> None:
    crypto = WeChatCrypto(TX_TOKEN, [TX_KEY], TX_APPID)
    assert check_msg_signature(TX_TOKEN, TX_VERIFY_SIGNATURE, TX_VERIFY_TIMESTAMP, TX_VERIFY_NONCE, TX_VERIFY_ECHOSTR)
    assert crypto.decrypt(TX_VERIFY_ECHOSTR) == "1616140317555161061"


def test_tencent_vector_refused_with_another_appid() -> None:
    crypto = WeChatCrypto(TX_TOKEN, [TX_KEY], "wx5823bf96d3bd56c8")
    with pytest.raises(WeChatProtocolError) as info:
        crypto.decrypt(TX_ENCRYPT)
    assert info.value.reason == "wrong appid"


# --------------------------------------------------------------------------- plain signature and freshness


def test_check_signature_matches_the_sorted_sha1() -> None:
    token, timestamp, nonce = "QDG6eK", "1409659813", "1372623149"
    expected = hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()
    # sorted order is nonce, timestamp, token here: a plain concatenation in argument order would differ
    assert expected == hashlib.sha1(b"13726231491409659813QDG6eK").hexdigest()
    assert check_signature(token, expected, timestamp, nonce)
    assert not check_signature(token, expected.upper(), timestamp, nonce)
    assert not check_signature(token, expected[:-1] + "0" if expected[-1] != "0" else "1", timestamp, nonce)
    assert not check_signature("other", expected, timestamp, nonce)
    assert not check_signature(token, "", timestamp, nonce)


def test_check_signature_agrees_with_wechatpy() -> None:
    utils = pytest.importorskip("wechatpy.utils")
    exceptions = pytest.importorskip("wechatpy.exceptions")
    token, timestamp, nonce = "weihai", "1700000000", "42"
    signature = hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()
    utils.check_signature(token, signature, timestamp, nonce)  # wechatpy raises when it disagrees
    assert check_signature(token, signature, timestamp, nonce)
    with pytest.raises(exceptions.InvalidSignatureException):
        utils.check_signature(token, "0" * 40, timestamp, nonce)
    assert not check_signature(token, "0" * 40, timestamp, nonce)


@pytest.mark.parametrize("bad", [None, "签名", "\udcff", "a" * 1000, 12345])
def test_signature_checks_return_false_on_garbage(bad: object) -> None:
    assert check_signature(TOKEN, bad, "1", "2") is False  # type: ignore[arg-type]
    assert check_signature(TOKEN, "0" * 40, bad, "2") is False  # type: ignore[arg-type]
    assert check_msg_signature(TOKEN, bad, "1", "2", "x") is False  # type: ignore[arg-type]
    assert check_msg_signature(TOKEN, "0" * 40, "1", "2", bad) is False  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("timestamp", "fresh"),
    [
        ("1700000000", True),
        ("1700000300", True),
        ("1699999700", True),
        ("1700000301", False),  # future beyond max_age
        ("1699999699", False),  # stale
        ("0", False),
        ("", False),
        ("abc", False),
        ("-1700000000", False),
        ("+1700000000", False),
        ("1700000000.0", False),
        (" 1700000000", False),
        ("1700000000\n", False),
        ("١٧٠٠٠٠٠٠٠٠", False),  # Arabic-Indic digits are digits to str.isdigit, not to us
        ("9" * 40, False),
        (None, False),
    ],
)
def test_is_fresh(timestamp: str, fresh: bool) -> None:
    assert is_fresh(timestamp, now=1_700_000_000.0) is fresh


def test_is_fresh_max_age() -> None:
    assert is_fresh("1700000000", 1_700_000_050.5, max_age=60)
    assert not is_fresh("1700000000", 1_700_000_050.5, max_age=30)


# --------------------------------------------------------------------------- encryption


def test_round_trip_with_chinese_and_emoji(crypto: WeChatCrypto) -> None:
    text = "<xml><Content><![CDATA[创业威海 🚀 ok]]></Content></xml>"
    encrypted, signature = crypto.encrypt(text, "nonce1", "1700000000")
    assert signature == msg_signature(TOKEN, "1700000000", "nonce1", encrypted)
    assert crypto.decrypt(encrypted) == text
    raw = _aes_decrypt_raw(KEY_NEW, encrypted)
    assert len(raw) % 32 == 0  # WeChat pads to 32-byte blocks
    assert 1 <= raw[-1] <= 32
    # two encryptions of the same text differ (random prefix), both decrypt
    again, _ = crypto.encrypt(text, "nonce1", "1700000000")
    assert again != encrypted
    assert crypto.decrypt(again) == text


@pytest.mark.parametrize("size", [0, 1, 11, 12, 13, 43, 44, 45, 100])
def test_padding_sizes(crypto: WeChatCrypto, size: int) -> None:
    # 16 + 4 + 18 (appid) = 38 bytes of overhead: size 26 aligns exactly, which needs a full 32-byte pad block
    text = "x" * size
    assert crypto.decrypt(crypto.encrypt(text, "n", "1")[0]) == text
    assert crypto.decrypt(crypto.encrypt("y" * 26, "n", "1")[0]) == "y" * 26
    assert _aes_decrypt_raw(KEY_NEW, crypto.encrypt("y" * 26, "n", "1")[0])[-1] == 32


def test_interoperates_with_wechatpy() -> None:
    wechatpy_crypto = pytest.importorskip("wechatpy.crypto")
    theirs = wechatpy_crypto.WeChatCrypto(TOKEN, KEY_NEW, APPID)
    ours = WeChatCrypto(TOKEN, [KEY_NEW], APPID)
    text = "<xml><Content><![CDATA[威海创业 ]]]]><![CDATA[> 👩‍💻]]></Content></xml>"

    # ours -> wechatpy
    envelope = encrypted_reply(ours, text, "8723", "1700000123")
    signature = DET.fromstring(envelope).findtext("MsgSignature")
    assert theirs.decrypt_message(envelope, signature, "1700000123", "8723") == text

    # wechatpy -> ours
    their_envelope = theirs.encrypt_message(text, "5566", "1700000456").encode()
    encrypted = parse_encrypted_envelope(their_envelope)
    their_signature = DET.fromstring(their_envelope).findtext("MsgSignature")
    assert check_msg_signature(TOKEN, their_signature, "1700000456", "5566", encrypted)
    assert ours.decrypt(encrypted) == text


def test_key_rotation() -> None:
    old = WeChatCrypto(TOKEN, [KEY_OLD], APPID)
    encrypted, _ = old.encrypt("sent before the rotation", "n", "1")
    rotating = WeChatCrypto(TOKEN, [KEY_NEW, KEY_OLD], APPID)
    assert rotating.decrypt(encrypted) == "sent before the rotation"
    # new messages use the current (first) key
    fresh, _ = rotating.encrypt("after", "n", "1")
    assert WeChatCrypto(TOKEN, [KEY_NEW], APPID).decrypt(fresh) == "after"
    with pytest.raises(WeChatProtocolError):
        old.decrypt(fresh)
    with pytest.raises(WeChatProtocolError):
        WeChatCrypto(TOKEN, [KEY_NEW], APPID).decrypt(encrypted)


def test_wrong_appid(crypto: WeChatCrypto) -> None:
    encrypted, _ = WeChatCrypto(TOKEN, [KEY_NEW], "wx0000000000000000").encrypt("hi", "n", "1")
    with pytest.raises(WeChatProtocolError) as info:
        crypto.decrypt(encrypted)
    assert info.value.reason == "wrong appid"
    # an appid that is a prefix or an extension of ours is still wrong
    for appid in (APPID[:-1], APPID + "x"):
        encrypted, _ = WeChatCrypto(TOKEN, [KEY_NEW], appid).encrypt("hi", "n", "1")
        with pytest.raises(WeChatProtocolError):
            crypto.decrypt(encrypted)


def test_forged_signature(crypto: WeChatCrypto) -> None:
    encrypted, signature = crypto.encrypt("hi", "nonce", "1700000000")
    assert check_msg_signature(TOKEN, signature, "1700000000", "nonce", encrypted)
    assert not check_msg_signature(TOKEN, "0" * 40, "1700000000", "nonce", encrypted)
    assert not check_msg_signature("other-token", signature, "1700000000", "nonce", encrypted)
    assert not check_msg_signature(TOKEN, signature, "1700000001", "nonce", encrypted)
    # a signature computed without the Encrypt text (the plain scheme) does not pass as a msg_signature
    assert not check_msg_signature(
        TOKEN, hashlib.sha1("".join(sorted([TOKEN, "1700000000", "nonce"])).encode()).hexdigest(),
        "1700000000", "nonce", encrypted,
    )  # fmt: skip


# Flipping a bit of ciphertext block k garbles plaintext block k and flips the same bit of block k+1. Positions 0-3
# hit the length field, the last blocks the appid and the padding: decrypt itself notices those.
@pytest.mark.parametrize("position", [0, 1, 2, 3, -1, -5, -16, -17, -32, -33])
def test_tampered_ciphertext(crypto: WeChatCrypto, position: int) -> None:
    encrypted, signature = crypto.encrypt("a message of some length, " * 3, "n", "1")
    raw = bytearray(base64.b64decode(encrypted))
    raw[position] ^= 0x01
    tampered = base64.b64encode(bytes(raw)).decode()
    assert not check_msg_signature(TOKEN, signature, "1", "n", tampered)
    with pytest.raises(WeChatProtocolError):
        crypto.decrypt(tampered)


def test_tampering_inside_the_message_is_caught_by_the_signature_only(crypto: WeChatCrypto) -> None:
    # CBC without a MAC: this is why the msg_signature must be checked before decrypting.
    text = "pay 100 yuan to alice, thanks."
    encrypted, signature = crypto.encrypt(text, "n", "1")
    raw = bytearray(base64.b64decode(encrypted))
    # "1" is message byte 4, plaintext byte 16 + 4 + 4 = 24, i.e. byte 8 of block 1: flip byte 8 of ciphertext block 0.
    # That garbles plaintext block 0, which is only the random prefix.
    raw[8] ^= ord("1") ^ ord("9")
    tampered = base64.b64encode(bytes(raw)).decode()
    assert not check_msg_signature(TOKEN, signature, "1", "n", tampered)
    assert crypto.decrypt(tampered) == "pay 900 yuan to alice, thanks."


def test_bad_padding(crypto: WeChatCrypto) -> None:
    good = _pad32(_layout(b"hello"))
    assert crypto.decrypt(_aes_encrypt_raw(KEY_NEW, good)) == "hello"
    pad = good[-1]
    assert pad > 2
    for broken in (
        good[:-1] + b"\x00",  # pad byte 0
        good[:-1] + b"\x21",  # pad byte 33 > 32
        good[:-1] + b"\xff",
        good[:-pad] + bytes([pad - 1]) + bytes([pad]) * (pad - 1),  # first pad byte differs
        good[:-2] + bytes([pad + 1, pad]),  # one in the middle differs
    ):
        with pytest.raises(WeChatProtocolError) as info:
            crypto.decrypt(_aes_encrypt_raw(KEY_NEW, broken))
        assert info.value.reason == "bad padding"


def test_bad_lengths(crypto: WeChatCrypto) -> None:
    # declared message length runs past the data
    data = b"0123456789abcdef" + struct.pack(">I", 1000) + b"hello" + APPID.encode()
    with pytest.raises(WeChatProtocolError) as info:
        crypto.decrypt(_aes_encrypt_raw(KEY_NEW, _pad32(data)))
    assert info.value.reason == "bad length"
    # huge length field
    data = b"0123456789abcdef" + b"\xff\xff\xff\xff" + b"hello" + APPID.encode()
    with pytest.raises(WeChatProtocolError):
        crypto.decrypt(_aes_encrypt_raw(KEY_NEW, _pad32(data)))
    # shorter than the random prefix and the length field
    with pytest.raises(WeChatProtocolError) as info:
        crypto.decrypt(_aes_encrypt_raw(KEY_NEW, b"0123456789" + b"\x16" * 22))
    assert info.value.reason == "bad length"
    # length field too small: the rest of the message is taken for the appid
    data = b"0123456789abcdef" + struct.pack(">I", 2) + b"hello" + APPID.encode()
    with pytest.raises(WeChatProtocolError) as info:
        crypto.decrypt(_aes_encrypt_raw(KEY_NEW, _pad32(data)))
    assert info.value.reason == "wrong appid"


def test_message_not_utf8(crypto: WeChatCrypto) -> None:
    with pytest.raises(WeChatProtocolError):
        crypto.decrypt(_aes_encrypt_raw(KEY_NEW, _pad32(_layout(b"\xff\xfe bad"))))


@pytest.mark.parametrize(
    "encrypted",
    [
        "",
        "not base64!!",
        "abc",
        "QUJD",  # valid base64, 3 bytes
        base64.b64encode(b"x" * 48).decode()[:-1],
        base64.b64encode(b"x" * 40).decode(),  # not a multiple of 16
        base64.b64encode(b"x" * 16).decode(),  # one block: too short
        "密文密文密文密文",
        "\udcff" * 44,
        TX_ENCRYPT.replace("+", "-"),  # url-safe alphabet is not WeChat's
        TX_ENCRYPT + "\n",
        None,
        12345,
    ],
)
def test_bad_base64_and_garbage(crypto: WeChatCrypto, encrypted: object) -> None:
    with pytest.raises(WeChatProtocolError):
        crypto.decrypt(encrypted)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200).map(lambda b: base64.b64encode(b).decode())))
def test_decrypt_raises_only_protocol_errors(encrypted: str) -> None:
    crypto = WeChatCrypto(TOKEN, [KEY_NEW, KEY_OLD], APPID)
    with pytest.raises(WeChatProtocolError):
        crypto.decrypt(encrypted)


@pytest.mark.parametrize(
    "keys",
    [[], ["short"], [KEY_NEW + "A"], [KEY_NEW[:-1] + "="], [KEY_NEW[:-1] + "-"], [KEY_NEW, "bad"], KEY_NEW],
)
def test_bad_configuration(keys: object) -> None:
    with pytest.raises(ValueError, match=r"."):
        WeChatCrypto(TOKEN, keys, APPID)  # type: ignore[arg-type]


def test_crypto_repr_hides_keys() -> None:
    assert KEY_NEW not in repr(WeChatCrypto(TOKEN, [KEY_NEW], APPID))
    assert TOKEN not in repr(WeChatCrypto(TOKEN, [KEY_NEW], APPID))


# --------------------------------------------------------------------------- incoming XML


def _message_xml(**fields: str) -> bytes:
    parts = {"ToUserName": "gh_account", "FromUserName": "oUser123", "CreateTime": "1700000000", **fields}
    body = "".join(
        f"<{tag}>{value}</{tag}>" if tag in ("CreateTime", "MsgId") else f"<{tag}><![CDATA[{value}]]></{tag}>"
        for tag, value in parts.items()
    )
    return f"<xml>{body}</xml>".encode()


def test_parse_text_message() -> None:
    message = parse_message(_message_xml(MsgType="text", Content="你好 <b>&amp;", MsgId="24000000000000001"))
    assert message == IncomingMessage(
        to_user="gh_account",
        from_user="oUser123",
        create_time=1700000000,
        msg_type="text",
        content="你好 <b>&amp;",
        msg_id="24000000000000001",
    )
    assert message.event is None
    assert message.event_key is None
    assert message.dedup_key == "24000000000000001"


def test_parse_non_text_message() -> None:
    message = parse_message(_message_xml(MsgType="image", PicUrl="http://x/y.jpg", MediaId="m1", MsgId="7"))
    assert message.msg_type == "image"
    assert message.content == ""
    assert message.fields["PicUrl"] == "http://x/y.jpg"
    with pytest.raises(TypeError):
        message.fields["PicUrl"] = "changed"  # type: ignore[index]


def test_subscribe_via_qr_strips_qrscene_prefix() -> None:
    message = parse_message(_message_xml(MsgType="event", Event="subscribe", EventKey="qrscene_m7", Ticket="T"))
    assert message.msg_type == "event"
    assert message.event == "subscribe"
    assert message.event_key == "m7"
    assert message.msg_id is None
    assert message.dedup_key == "oUser123:1700000000:subscribe"


def test_scan_gives_the_same_scene() -> None:
    message = parse_message(_message_xml(MsgType="event", Event="SCAN", EventKey="m7", Ticket="T"))
    assert message.event == "scan"
    assert message.event_key == "m7"
    assert message.dedup_key == "oUser123:1700000000:scan"


def test_plain_subscribe_and_unsubscribe() -> None:
    plain = parse_message(_message_xml(MsgType="event", Event="subscribe", EventKey=""))
    assert plain.event == "subscribe"
    assert plain.event_key is None
    bare = parse_message(_message_xml(MsgType="event", Event="subscribe"))
    assert bare.event_key is None
    unsubscribe = parse_message(_message_xml(MsgType="event", Event="unsubscribe"))
    assert unsubscribe.event == "unsubscribe"
    assert unsubscribe.dedup_key == "oUser123:1700000000:unsubscribe"


def test_click_keeps_its_key() -> None:
    message = parse_message(_message_xml(MsgType="event", Event="CLICK", EventKey="MENU_PLAN"))
    assert message.event == "click"
    assert message.event_key == "MENU_PLAN"
    # only subscribe carries the qrscene_ prefix; a menu key is left alone
    odd = parse_message(_message_xml(MsgType="event", Event="CLICK", EventKey="qrscene_x"))
    assert odd.event_key == "qrscene_x"


def test_dedup_keys_tell_retries_from_new_messages() -> None:
    first = parse_message(_message_xml(MsgType="event", Event="CLICK", EventKey="A"))
    retry = parse_message(_message_xml(MsgType="event", Event="CLICK", EventKey="A"))
    later = parse_message(_message_xml(MsgType="event", Event="CLICK", EventKey="A", CreateTime="1700000001"))
    assert first.dedup_key == retry.dedup_key != later.dedup_key


def test_parse_accepts_whitespace_and_declaration() -> None:
    body = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<xml>\n  <ToUserName><![CDATA[gh_a]]></ToUserName>\n'
        b"  <FromUserName><![CDATA[oU]]></FromUserName>\n  <CreateTime>1700000000</CreateTime>\n"
        b"  <MsgType><![CDATA[text]]></MsgType>\n  <Content><![CDATA[ hi ]]></Content>\n"
        b"  <MsgId>1</MsgId>\n</xml>\n"
    )
    message = parse_message(body)
    assert (message.to_user, message.from_user, message.content, message.msg_id) == ("gh_a", "oU", " hi ", "1")


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<xml><ToUserName>gh</ToUserName><FromUserName>o</FromUserName><CreateTime>1</CreateTime>
<MsgType>text</MsgType><Content>&lol9;</Content><MsgId>1</MsgId></xml>"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<xml><ToUserName>gh</ToUserName><FromUserName>o</FromUserName><CreateTime>1</CreateTime>
<MsgType>text</MsgType><Content>&xxe;</Content><MsgId>1</MsgId></xml>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE xml SYSTEM "http://127.0.0.1:1/evil.dtd">
<xml><ToUserName>gh</ToUserName><FromUserName>o</FromUserName><CreateTime>1</CreateTime>
<MsgType>text</MsgType><Content>x</Content></xml>"""

PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE xml [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>
<xml><ToUserName>gh</ToUserName><FromUserName>o</FromUserName><CreateTime>1</CreateTime>
<MsgType>text</MsgType></xml>"""

PLAIN_DTD = b"""<!DOCTYPE xml>
<xml><ToUserName>gh</ToUserName><FromUserName>o</FromUserName><CreateTime>1</CreateTime>
<MsgType>text</MsgType><Content>x</Content></xml>"""

ENCRYPT_XXE = b"""<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<xml><ToUserName>gh</ToUserName><Encrypt>&xxe;</Encrypt></xml>"""


@pytest.mark.parametrize("body", [BILLION_LAUGHS, XXE, EXTERNAL_DTD, PARAMETER_ENTITY, PLAIN_DTD, ENCRYPT_XXE])
def test_xml_attacks_are_refused(body: bytes) -> None:
    with pytest.raises(WeChatProtocolError):
        parse_message(body)
    with pytest.raises(WeChatProtocolError):
        parse_encrypted_envelope(body)


def test_xxe_never_reads_the_file() -> None:
    with pytest.raises(WeChatProtocolError) as info:
        parse_message(XXE)
    assert "root:" not in str(info.value)
    assert info.value.reason == "DTD forbidden"


def test_oversized_body_is_refused() -> None:
    body = _message_xml(MsgType="text", Content="x" * 70_000, MsgId="1")
    with pytest.raises(WeChatProtocolError) as info:
        parse_message(body)
    assert info.value.reason == "body too large"
    with pytest.raises(WeChatProtocolError):
        parse_encrypted_envelope(b"<xml><Encrypt>" + b"A" * 70_000 + b"</Encrypt></xml>")
    small = _message_xml(MsgType="text", Content="x" * 100, MsgId="1")
    assert parse_message(small, max_bytes=len(small)).content == "x" * 100
    with pytest.raises(WeChatProtocolError):
        parse_message(small, max_bytes=len(small) - 1)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   ",
        b"not xml at all",
        b"<xml><ToUserName>gh</ToUserName>",
        b"<xml><a></b></xml>",
        b"\xff\xfe<xml/>",
        b"<xml>&undefined;</xml>",
        b"<xml></xml><xml></xml>",
        b"<notxml><Encrypt>AAAA</Encrypt></notxml>",
        "<xml>\udcff</xml>",
        None,
        12345,
    ],
)
def test_malformed_xml_is_refused(body: object) -> None:
    with pytest.raises(WeChatProtocolError):
        parse_message(body)  # type: ignore[arg-type]
    with pytest.raises(WeChatProtocolError):
        parse_encrypted_envelope(body)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "body",
    [
        b"<xml><FromUserName>o</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType></xml>",
        b"<xml><ToUserName>g</ToUserName><CreateTime>1</CreateTime><MsgType>text</MsgType></xml>",
        b"<xml><ToUserName>g</ToUserName><FromUserName>o</FromUserName><MsgType>text</MsgType></xml>",
        b"<xml><ToUserName>g</ToUserName><FromUserName>o</FromUserName><CreateTime>1</CreateTime></xml>",
        b"<xml><ToUserName>g</ToUserName><FromUserName> </FromUserName><CreateTime>1</CreateTime>"
        b"<MsgType>text</MsgType></xml>",
        b"<xml><ToUserName>g</ToUserName><FromUserName>o</FromUserName><CreateTime>soon</CreateTime>"
        b"<MsgType>text</MsgType></xml>",
        b"<xml><ToUserName>g</ToUserName><FromUserName>o</FromUserName><CreateTime>-1</CreateTime>"
        b"<MsgType>text</MsgType></xml>",
        b"<xml><ToUserName>g</ToUserName><FromUserName>o</FromUserName><CreateTime>1</CreateTime>"
        b"<MsgType>event</MsgType></xml>",  # an event without Event
    ],
)
def test_missing_or_bad_required_fields(body: bytes) -> None:
    with pytest.raises(WeChatProtocolError):
        parse_message(body)


def test_envelope_without_encrypt() -> None:
    with pytest.raises(WeChatProtocolError):
        parse_encrypted_envelope(b"<xml><ToUserName>gh</ToUserName></xml>")
    with pytest.raises(WeChatProtocolError):
        parse_encrypted_envelope(b"<xml><Encrypt></Encrypt></xml>")


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=300),
        st.text(max_size=300).map(lambda t: f"<xml>{t}</xml>".encode("utf-8", "surrogatepass")),
        st.lists(
            st.sampled_from(["ToUserName", "FromUserName", "CreateTime", "MsgType", "Event", "EventKey", "Encrypt"]),
            max_size=8,
        ).flatmap(
            lambda tags: st.lists(st.text(max_size=20), min_size=len(tags), max_size=len(tags)).map(
                lambda values: _xml_of(tags, values)
            )
        ),
    )
)
def test_parsers_raise_only_protocol_errors(body: bytes) -> None:
    for parse in (parse_message, parse_encrypted_envelope):
        with contextlib.suppress(WeChatProtocolError):
            parse(body)


def _xml_of(tags: list[str], values: list[str]) -> bytes:
    inner = "".join(f"<{tag}>{_escape(value)}</{tag}>" for tag, value in zip(tags, values, strict=True))
    return f"<xml>{inner}</xml>".encode("utf-8", "surrogatepass")


# --------------------------------------------------------------------------- replies


def test_text_reply_shape() -> None:
    reply = text_reply("oUser123", "gh_account", "你好", 1700000000)
    assert reply == (
        "<xml><ToUserName><![CDATA[oUser123]]></ToUserName><FromUserName><![CDATA[gh_account]]></FromUserName>"
        "<CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        "<Content><![CDATA[你好]]></Content></xml>"
    )


@pytest.mark.parametrize(
    "content",
    ["a]]>b", "]]>", "]]>]]>", "]]]]>>", "x]]", "]", "<![CDATA[inner]]>", "</Content></xml>", "&amp; <>", ""],
)
def test_cdata_escaping_round_trips(content: str) -> None:
    reply = text_reply("oUser", "gh_a", content, 1700000000)
    assert DET.fromstring(reply).findtext("Content") == content
    parsed = parse_message(reply.encode())
    assert parsed.content == content
    assert (parsed.to_user, parsed.from_user, parsed.msg_type) == ("oUser", "gh_a", "text")


def test_reply_drops_characters_xml_cannot_carry() -> None:
    reply = text_reply("oUser", "gh_a", "a\x00b\x1bc\tok\n\ufffe\udc80", 1)
    assert DET.fromstring(reply).findtext("Content") == "abc\tok\n"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_text_survives_a_reply(content: str) -> None:
    parsed = parse_message(text_reply("o", "g", content, 1).encode())
    expected = "".join(
        ch
        for ch in content
        if ch in "\t\n\r" or ("\x20" <= ch <= "\ud7ff") or ("\ue000" <= ch <= "\ufffd") or ch >= "\U00010000"
    )
    # XML parsers normalise line ends
    assert parsed.content == expected.replace("\r\n", "\n").replace("\r", "\n")


def test_encrypted_reply_envelope(crypto: WeChatCrypto) -> None:
    inner = text_reply("oUser", "gh_a", "回复 ]]> 🚀", 1700000000)
    envelope = encrypted_reply(crypto, inner, "nonce]]>x", "1700000000")
    root = DET.fromstring(envelope)
    assert [child.tag for child in root] == ["Encrypt", "MsgSignature", "TimeStamp", "Nonce"]
    encrypted = parse_encrypted_envelope(envelope.encode())
    assert root.findtext("TimeStamp") == "1700000000"
    assert root.findtext("Nonce") == "nonce]]>x"
    assert check_msg_signature(TOKEN, root.findtext("MsgSignature"), "1700000000", "nonce]]>x", encrypted)
    assert crypto.decrypt(encrypted) == inner
    assert parse_message(crypto.decrypt(encrypted).encode()).content == "回复 ]]> 🚀"


# --------------------------------------------------------------------------- UTF-8 limits


def _assert_clean_cut(original: str, cut: str, limit: int) -> None:
    assert len(cut.encode("utf-8")) <= limit
    assert original.startswith(cut)


def test_fit_utf8_leaves_short_text_alone() -> None:
    assert fit_utf8("hello") == "hello"
    assert fit_utf8("") == ""
    exact = "汉" * 682 + "ab"  # 2046 + 2 bytes
    assert fit_utf8(exact) == exact


@pytest.mark.parametrize("limit", [4, 5, 6, 7, 10, 100, 2047, 2048])
@pytest.mark.parametrize(
    "text", ["创业威海" * 1000, "🚀" * 1000, "a🚀汉é" * 500, "ab" + "€" * 1000, "x" * 3000, "é" * 2000]
)
def test_fit_utf8_never_exceeds_nor_breaks_a_character(text: str, limit: int) -> None:
    cut = fit_utf8(text, limit)
    _assert_clean_cut(text, cut, limit)
    assert cut
    assert len(cut.encode("utf-8")) > limit - 4  # it cuts as late as it can when there is no line break


def test_fit_utf8_prefers_line_breaks() -> None:
    text = "第一段内容。\n" * 150 + "最后一段没有换行" * 100
    cut = fit_utf8(text, 2048)
    _assert_clean_cut(text, cut, 2048)
    assert cut.endswith("第一段内容。")
    assert not cut.endswith("\n")
    # a line break too early is not worth losing most of the room
    early = "short\n" + "长" * 1000
    assert len(fit_utf8(early, 2048).encode()) >= 2046


def test_fit_utf8_keeps_emoji_sequences_together() -> None:
    family = "👨\u200d👩\u200d👧\u200d👦"  # 25 bytes, one grapheme
    text = "a" * 20 + family
    cut = fit_utf8(text, 30)
    assert cut == "a" * 20
    accented = "a" * 9 + "e\u0301" * 5
    assert not fit_utf8(accented, 10).endswith("e")
    assert fit_utf8(accented, 10) == "a" * 9
    thumbs = "x" * 5 + "👍🏽"
    assert fit_utf8(thumbs, 9) == "x" * 5


def test_fit_utf8_rejects_impossible_limits() -> None:
    with pytest.raises(ValueError, match="limit"):
        fit_utf8("abc", 3)
    with pytest.raises(ValueError, match="limit"):
        split_utf8("abc", 0)


def test_fit_utf8_lone_surrogates() -> None:
    cut = fit_utf8("a\udc80" * 10, 8)
    assert "\udc80" not in cut
    assert len(cut.encode("utf-8")) <= 8


def test_split_utf8() -> None:
    text = "\n".join(f"第{i}行：创业威海 🚀 行动计划" for i in range(300))
    pieces = split_utf8(text, 2048)
    assert len(pieces) > 1
    for piece in pieces:
        assert 0 < len(piece.encode("utf-8")) <= 2048
        assert not piece.startswith("\n")
        assert not piece.endswith("\n")
    assert "\n".join(pieces) == text  # every split happened at a line break


def test_split_utf8_without_line_breaks() -> None:
    text = "汉🚀a" * 1000
    pieces = split_utf8(text, 100)
    assert "".join(pieces) == text
    assert all(len(p.encode()) <= 100 for p in pieces)
    assert split_utf8("", 10) == []
    assert split_utf8("short", 10) == ["short"]
    assert split_utf8("\n" * 300, 10) == ["\n" * 10] * 30


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400), st.integers(min_value=4, max_value=300))
def test_fit_and_split_properties(text: str, limit: int) -> None:
    cut = fit_utf8(text, limit)
    assert len(cut.encode("utf-8")) <= limit
    if any("\ud800" <= ch <= "\udfff" for ch in text):
        return
    assert text.startswith(cut)
    pieces = split_utf8(text, limit)
    assert all(0 < len(p.encode("utf-8")) <= limit for p in pieces)
    # nothing but line breaks is ever lost
    assert "".join(pieces).replace("\n", "").replace("\r", "") == text.replace("\n", "").replace("\r", "")
