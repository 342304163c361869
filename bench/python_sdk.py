"""The official Python SDK (PyPI alipay-sdk-python 3.7.1411 in interop/.venv) on
the five protocol operations that crates/alipay/benches/protocol.rs measures,
with the same keys and payloads (the worked examples of protocol.md §2.4, §5,
§6.3). Each operation is checked once before it is timed.

    interop/.venv/bin/python bench/python_sdk.py SECONDS
    -> one line per operation: "<name> <median batch> <best batch> <overall>"
       in operations per CPU-second

Where the SDK has a function for the job it is called as an integrator calls
it; where it has none (it is a client: it never verifies requests, signs
responses or parses notifications) the job is done with the SDK's own
SignatureUtils, as its documented notification recipe does.
"""

import json
import os
import sys
import time
import urllib.parse

try:
    from alipay.aop.api.AlipayClientConfig import AlipayClientConfig
    from alipay.aop.api.DefaultAlipayClient import DefaultAlipayClient
    from alipay.aop.api.domain.AlipayTradePayModel import AlipayTradePayModel
    from alipay.aop.api.request.AlipayTradePayRequest import AlipayTradePayRequest
    from alipay.aop.api.response.AlipayTradePayResponse import AlipayTradePayResponse
    from alipay.aop.api.util.SignatureUtils import get_sign_content, sign_with_rsa2, verify_with_rsa
except ImportError:
    sys.exit("bench/python_sdk.py: alipay-sdk-python is missing; run scripts/setup-interop "
             "and use interop/.venv/bin/python")

SECONDS = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "crates/alipay/tests/conformance/worked-examples")


def read(rel):
    with open(os.path.join(EXAMPLES, rel), encoding="utf-8") as f:
        return f.read()


REQUEST = json.loads(read("canonical_request.json"))
RESPONSE_HTTP = read("canonical_response_http.txt").replace("\r\n", "\n")
RESPONSE_BODY = RESPONSE_HTTP.split("\n\n", 1)[1].strip()
NOTIFY_BODY = read("notify_body.txt").strip()
RESPONSE_KEY = "alipay_trade_pay_response"
NODE = RESPONSE_BODY[
    RESPONSE_BODY.index('"%s":' % RESPONSE_KEY) + len(RESPONSE_KEY) + 3:
    RESPONSE_BODY.rindex(',"sign"')
]
# The SDK takes keys as bare base64: PKCS#1 private keys, SPKI public keys.
APP_PRIVATE = read("keys/app_pkcs1.b64").strip()
APP_PUBLIC = read("keys/app_pub.b64").strip()
ALIPAY_PRIVATE = read("keys/alipay_pkcs1.b64").strip()
ALIPAY_PUBLIC = read("keys/alipay_pub.b64").strip()

config = AlipayClientConfig()
config.app_id = "2021000000000001"
config.app_private_key = APP_PRIVATE
config.alipay_public_key = ALIPAY_PUBLIC
config.sign_type = "RSA2"
client = DefaultAlipayClient(alipay_client_config=config)

model = AlipayTradePayModel()
model.out_trade_no = "T20240513000001"
model.scene = "bar_code"
model.auth_code = "28763443825664394"
model.subject = "测试商品 A&B=C/ok"
model.total_amount = "88.88"
pay = AlipayTradePayRequest(biz_model=model)
pay.notify_url = "https://merchant.example.com/alipay/notify"


def build_and_sign_request():
    # sdk_execute: the SDK's request-building path (params, sign, encoding), minus HTTP.
    return client.sdk_execute(pay)


def verify_request():
    query = REQUEST["raw_path"].split("?", 1)[1]
    params = dict(urllib.parse.parse_qsl(query + "&" + REQUEST["raw_body"], keep_blank_values=True))
    sign = params.pop("sign")
    return verify_with_rsa(APP_PUBLIC, get_sign_content(params).encode("utf-8"), sign)


def sign_response():
    sign = sign_with_rsa2(ALIPAY_PRIVATE, NODE, "utf-8")
    return '{"%s":%s,"sign":"%s"}' % (RESPONSE_KEY, NODE, sign)


def verify_response():
    # execute()'s response path: locate and verify the node, then parse it.
    content = client._DefaultAlipayClient__parse_response(RESPONSE_BODY.encode("utf-8"))
    response = AlipayTradePayResponse()
    response.parse_response_content(content)
    return response


def verify_notification():
    params = dict(urllib.parse.parse_qsl(NOTIFY_BODY, keep_blank_values=True))
    sign = params.pop("sign")
    params.pop("sign_type")
    content = get_sign_content(params)
    return verify_with_rsa(ALIPAY_PUBLIC, content.encode(params.get("charset", "utf-8")), sign)


OPERATIONS = [
    ("build_and_sign_request", build_and_sign_request),
    ("verify_request", verify_request),
    ("sign_response", sign_response),
    ("verify_response", verify_response),
    ("verify_notification", verify_notification),
]


def check():
    """A benchmark must never time a failure path."""
    built = dict(urllib.parse.parse_qsl(build_and_sign_request(), keep_blank_values=True))
    sign = built.pop("sign")
    if not verify_with_rsa(APP_PUBLIC, get_sign_content(built).encode("utf-8"), sign):
        raise SystemExit("build_and_sign_request: the signature does not verify")
    if not verify_request():
        raise SystemExit("verify_request: the captured request does not verify")
    if sign_response() != RESPONSE_BODY:
        raise SystemExit("sign_response: differs from the captured response")
    if verify_response().trade_no != "2024051322001446881000041395":
        raise SystemExit("verify_response: wrong node")
    try:
        client._DefaultAlipayClient__parse_response(RESPONSE_BODY.replace("88.88", "88.89").encode("utf-8"))
    except Exception:  # the SDK raises ResponseException
        pass
    else:
        raise SystemExit("verify_response: a tampered body verified")
    if not verify_notification():
        raise SystemExit("verify_notification: the captured notification does not verify")


BATCHES = 100


def measure(op):
    """Warms up for a CPU-second, then runs BATCHES batches of equal CPU
    time (time.process_time: other work on a shared machine does not count).
    Returns the median batch's rate (the figure compared), the best batch's and
    the overall rate, in operations per CPU-second."""
    clock = time.process_time
    warm_end = clock() + 1
    while clock() < warm_end:
        op()
    rates = []
    calls = 0
    start = clock()
    for _ in range(BATCHES):
        batch_start = clock()
        batch_end = batch_start + SECONDS / BATCHES
        batch_calls = 0
        now = batch_start
        while now < batch_end:
            op()
            batch_calls += 1
            now = clock()
        calls += batch_calls
        rates.append(batch_calls / (now - batch_start))
    overall = calls / (clock() - start)
    rates.sort()
    median = (rates[(BATCHES - 1) // 2] + rates[BATCHES // 2]) / 2
    return median, rates[-1], overall


check()
for name, op in OPERATIONS:
    median, best, overall = measure(op)
    print("%s %.1f %.1f %.1f" % (name, median, best, overall), flush=True)
