"""Drives jianlian's sandbox with the official Python SDK (alipay-sdk-python
3.7.1411): onboarding -> pay -> query -> refund -> refund query -> cancel, plus
a business error. The SDK cannot put a port in its URL, so the sandbox listens
on port 80 of a loopback address. Prints one JSON object with every answer.
Usage: python sandbox_python.py '<json config>' (written by the Rust test)."""
import json
import sys
import urllib.request

from Crypto.PublicKey import RSA

from alipay.aop.api.AlipayClientConfig import AlipayClientConfig
from alipay.aop.api.DefaultAlipayClient import DefaultAlipayClient
from alipay.aop.api.request.AlipayTradeCancelRequest import AlipayTradeCancelRequest
from alipay.aop.api.request.AlipayTradeFastpayRefundQueryRequest import AlipayTradeFastpayRefundQueryRequest
from alipay.aop.api.request.AlipayTradePayRequest import AlipayTradePayRequest
from alipay.aop.api.request.AlipayTradeQueryRequest import AlipayTradeQueryRequest
from alipay.aop.api.request.AlipayTradeRefundRequest import AlipayTradeRefundRequest
from alipay.aop.api.request.AntMerchantExpandIndirectCreateRequest import AntMerchantExpandIndirectCreateRequest

cfg = json.loads(sys.argv[1])


def bare(pem):
    return "".join(line for line in pem.decode().splitlines() if not line.startswith("-----"))


config = AlipayClientConfig()
config.server_url = cfg["gateway"]
config.app_id = cfg["app_id"]
# The SDK reads PKCS#1 only.
config.app_private_key = bare(RSA.import_key(cfg["private_key"]).export_key(pkcs=1))
config.alipay_public_key = cfg["alipay_public_key"]
config.sign_type = "RSA2"
client = DefaultAlipayClient(alipay_client_config=config)


def control(path):
    req = urllib.request.Request(cfg["base"] + path, data=b"{}", method="POST",
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def call(request_class, biz):
    request = request_class()
    request.biz_content = biz
    return json.loads(client.execute(request))


out = {}
out["onboard"] = call(AntMerchantExpandIndirectCreateRequest, {
    "external_id": "PY001",
    "name": "派森测试商户有限公司",
    "alias_name": "派森测试",
    "service_phone": "021-77778888",
    "category_id": "2015050700000000",
    "source": cfg["pid"],
    "contact_info": [{"name": "赵六", "type": "LEGAL_PERSON", "mobile": "13700137000"}],
})
smid = out["onboard"]["sub_merchant_id"]


def order(no, amount, code):
    return {
        "out_trade_no": no, "scene": "bar_code", "auth_code": code, "subject": "测试商品",
        "total_amount": amount, "store_id": "PY_STORE", "terminal_id": "PY_T1",
        "sub_merchant": {"merchant_id": smid},
    }


code1 = control("/sandbox/buyers/%s/payment-codes" % cfg["buyer_id"])["auth_code"]
out["pay"] = call(AlipayTradePayRequest, order("PY_T1", "66.66", code1))
out["query"] = call(AlipayTradeQueryRequest, {"out_trade_no": "PY_T1"})
out["refund"] = call(AlipayTradeRefundRequest, {"out_trade_no": "PY_T1", "refund_amount": "6.66", "out_request_no": "PY_R1"})
out["refund_query"] = call(AlipayTradeFastpayRefundQueryRequest, {"out_trade_no": "PY_T1", "out_request_no": "PY_R1"})
code2 = control("/sandbox/buyers/%s/payment-codes" % cfg["buyer_id"])["auth_code"]
out["pay2"] = call(AlipayTradePayRequest, order("PY_T2", "10.00", code2))
out["cancel"] = call(AlipayTradeCancelRequest, {"out_trade_no": "PY_T2"})
out["missing"] = call(AlipayTradeQueryRequest, {"out_trade_no": "PY_NOPE"})
print(json.dumps(out, ensure_ascii=False))
