#!/usr/bin/env python3
"""Writes the hand-picked seed files of fuzz/corpus/ for the protocol crate's
targets: every conformance body plus small inputs aimed at each parser's edges.

Run from anywhere: `python3 fuzz/seed-corpus.py`. It only (re)writes the files
it names, so inputs added by fuzzing runs (findings) are kept.
"""
import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
CONFORMANCE = ROOT / "crates/alipay/tests/conformance"
CORPUS = ROOT / "fuzz/corpus"


def write(target, name, data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    path = CORPUS / target / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def response_seeds():
    for case in json.loads((CONFORMANCE / "response_verify.json").read_text()):
        prefix = bytes.fromhex(case.get("body_prefix_bytes_hex") or "")
        write("response_extractor", case["id"], case["method"].encode() + b"\n" + prefix + case["body"].encode())
    http = (CONFORMANCE / "worked-examples/canonical_response_http.txt").read_text()
    body = http.split("\n\n", 1)[1].strip()
    write("response_extractor", "canonical-pay", "alipay.trade.pay\n" + body)
    q = "alipay.trade.query\n"
    seeds = {
        "empty-object": q + "{}",
        "empty-input": "",
        "no-method-line": '{"alipay_trade_query_response":{"code":"10000"},"sign":"eA=="}',
        "error-response-only": q + '{"error_response":{"code":"40002","sub_code":"isv.invalid-app-id"}}',
        "both-containers": q + '{"error_response":{"code":"40002"},"alipay_trade_query_response":{"code":"10000"},"sign":"eA=="}',
        "duplicate-node": q + '{"alipay_trade_query_response":{"code":"10000"},"alipay_trade_query_response":{"code":"40004"},"sign":"eA=="}',
        "duplicate-sign": q + '{"alipay_trade_query_response":{},"sign":"eA==","sign":"eQ=="}',
        "key-inside-string": q + '{"x":"\\"alipay_trade_query_response\\":{","alipay_trade_query_response":{"a":"}{"},"sign":"eA=="}',
        "string-node": q + '{"alipay_trade_query_response":"c2VjcmV0","sign":"eA=="}',
        "number-node": q + '{"alipay_trade_query_response":10000,"sign":"eA=="}',
        "null-node": q + '{"alipay_trade_query_response":null}',
        "array-root": q + '[{"alipay_trade_query_response":{}}]',
        "bom": q + "\ufeff" + '{"alipay_trade_query_response":{"code":"10000"},"sign":"eA=="}',
        "trailing-text": q + '{"alipay_trade_query_response":{}}garbage',
        "unterminated-string": q + '{"alipay_trade_query_response":{"a":"b',
        "unterminated-object": q + '{"alipay_trade_query_response":{"a":{"b":[1,2',
        "backslash-at-end": q + '{"alipay_trade_query_response":{"a":"\\',
        "escaped-slashes": q + '{"alipay_trade_query_response":{"u":"https:\\/\\/x\\/y"},"sign":"eA=="}',
        "unicode-escapes": q + '{"alipay_trade_query_response":{"s":"\\u6d4b\\u8bd5\\ud83d\\ude00"},"sign":"eA=="}',
        "deep-nesting": q + '{"alipay_trade_query_response":' + "[" * 200 + "]" * 200 + "}",
        "odd-numbers": q + '{"alipay_trade_query_response":{"a":-0.5e+10,"b":1E-3,"c":--1,"d":1.2.3},"sign":"eA=="}',
        "literals": q + '{"alipay_trade_query_response":{"t":true,"f":false,"n":null,"x":nul},"sign":"eA=="}',
        "cert-sn": q + '{"alipay_trade_query_response":{"code":"10000"},"alipay_cert_sn":"7513daaaa48aa3ba2e4018d84402479c","sign":"eA=="}',
        "sign-not-string": q + '{"alipay_trade_query_response":{"code":"10000"},"sign":12}',
        "empty-sign": q + '{"alipay_trade_query_response":{"code":"40004","sub_code":"ACQ.SYSTEM_ERROR"},"sign":""}',
        "digits-in-method": "alipay.trade.v2.query\n" + '{"alipay_trade_v2_query_response":{"code":"10000"},"sign":"eA=="}',
        "pretty": q + '\n {\n  "alipay_trade_query_response" : {\n   "code" : "10000"\n  } ,\n  "sign" : "eA=="\n }\n',
        "non-utf8-key": q.encode() + b'{"\xff":1}',
    }
    for name, data in seeds.items():
        write("response_extractor", name, data)


def notification_seeds():
    for case in json.loads((CONFORMANCE / "notify_verify.json").read_text()):
        write("notification_parser", case["id"], case["body"])
    write("notification_parser", "canonical-notify", (CONFORMANCE / "worked-examples/notify_body.txt").read_text().strip())
    gbk_subject = "测试".encode("gbk")
    seeds = {
        "empty": b"",
        "only-separators": b"&&&",
        "only-equals": b"=",
        "empty-key": b"=value&a=1",
        "key-without-value": b"trade_status&sign_type=RSA2",
        "bad-percent": b"subject=%zz%&total_amount=1%2",
        "trailing-percent": b"a=%4",
        "plus-and-pct20": b"subject=a+b%20c%2Bd",
        "repeated-field": b"out_trade_no=1&out_trade_no=2",
        "repeated-after-decoding": b"out_trade_no=1&out%5Ftrade_no=2",
        "charset-gbk": b"charset=gbk&subject=" + b"".join(b"%%%02X" % b for b in gbk_subject),
        "charset-gb2312-raw-bytes": b"charset=GB2312&subject=" + gbk_subject,
        "charset-unknown": b"charset=latin1&subject=x",
        "charset-empty": b"charset=&subject=x",
        "invalid-utf8": b"subject=%FF%FE&charset=utf-8",
        "raw-invalid-utf8": b"subject=\xff\xfe",
        "sign-only": b"sign=eA%3D%3D&sign_type=RSA2",
        "sign-type-unknown": b"sign=eA%3D%3D&sign_type=SM2&a=1",
        "blank-values": b"body=&memo=+++&sign=eA%3D%3D&sign_type=RSA2",
        "equals-in-value": b"passback_params=a%3Db%26c%3Dd&x==y",
        "nul-byte": b"a=%00&b=\x00",
    }
    for name, data in seeds.items():
        write("notification_parser", name, data)


def yuan_seeds():
    seeds = [
        "88.88", "0.01", "0", "0.00", "0.5", "100000000.00", "100000000.01",
        "999999999999999.99", "1000000000000000", "9223372036854775807", ".5", "1.",
        "1.234", "-1.50", "--1", "-", "-0", "-0.00", "+1", "1e2", " 1", "1 ", "1,000",
        "0x10", "\uff11", "\u0663", "00012.3", "", "0.0038", "1.000000", "0.0000001",
        "007.00", "00", "-007.00", "88.8e0", "-0.5",
    ]
    for text in seeds:
        name = "".join(c if c.isascii() and (c.isalnum() or c in ".+-") else f"%{ord(c):02x}" for c in text)
        write("yuan_parser", "yuan-" + (name or "empty"), text)


if __name__ == "__main__":
    response_seeds()
    notification_seeds()
    yuan_seeds()
