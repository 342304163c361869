// Drives jianlian's acquirer gateway as a channel with the official Node SDK
// (alipay-sdk 4.14.0, validateSign: true), changing only the URL, app_id and
// keys: onboarding → store → pay → query → refund → refund query.
// Prints one JSON object with every answer.
// Usage: node gateway_node.mjs '<json config>' (written by the Rust test).
import { AlipaySdk } from 'alipay-sdk';

const cfg = JSON.parse(process.argv[2]);
const sdk = new AlipaySdk({
  appId: cfg.app_id,
  privateKey: cfg.private_key,
  keyType: 'PKCS8',
  alipayPublicKey: cfg.gateway_public_key,
  gateway: cfg.gateway,
  signType: 'RSA2',
  camelcase: false,
  timeout: 20000,
});

async function paymentCode() {
  const r = await fetch(`${cfg.sandbox}/sandbox/buyers/${cfg.buyer_id}/payment-codes`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{}',
  });
  if (!r.ok) throw new Error(`payment code: HTTP ${r.status} ${await r.text()}`);
  return (await r.json()).auth_code;
}

const call = (method, biz) => sdk.exec(method, { bizContent: biz }, { validateSign: true });
const suffix = cfg.suffix ?? '';
const out = {};
out.onboard = await call('ant.merchant.expand.indirect.create', {
  external_id: `NODE${suffix}`,
  name: '节点测试商户有限公司',
  alias_name: '节点测试',
  service_phone: '021-55556666',
  category_id: '2015050700000000',
  business_license: `9131000000NODE${suffix}`.slice(0, 18),
  contact_info: [{ name: '王五', type: 'LEGAL_PERSON', mobile: '13900139000' }],
});
const smid = out.onboard.sub_merchant_id;
out.store = await call('jianlian.merchant.store.create', {
  sub_merchant_id: smid,
  store_id: 'NODE_STORE',
  name: '节点一号店',
  terminal_ids: ['NODE_T1'],
});
const order = `NODE_ORDER${suffix}`;
out.pay = await call('alipay.trade.pay', {
  out_trade_no: order,
  scene: 'bar_code',
  auth_code: await paymentCode(),
  subject: '测试商品 A+B 100%',
  total_amount: '88.88',
  store_id: 'NODE_STORE',
  terminal_id: 'NODE_T1',
  sub_merchant: { merchant_id: smid },
});
out.query = await call('alipay.trade.query', { out_trade_no: order });
out.refund = await call('alipay.trade.refund', { out_trade_no: order, refund_amount: '8.88', out_request_no: 'NODE_R1' });
out.refund_query = await call('alipay.trade.fastpay.refund.query', { out_trade_no: order, out_request_no: 'NODE_R1' });
out.missing = await call('alipay.trade.query', { out_trade_no: 'NODE_NOPE' });
console.log(JSON.stringify(out));
