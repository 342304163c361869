// Drives jianlian's sandbox with the official Node SDK (alipay-sdk 4.14.0,
// validateSign: true): onboarding → pay → query → refund → refund query →
// cancel, plus a business error. Prints one JSON object with every answer.
// Usage: node sandbox_node.mjs '<json config>' (written by the Rust test).
import { AlipaySdk } from 'alipay-sdk';
import { controlAt } from './control.mjs';

const cfg = JSON.parse(process.argv[2]);
const sdk = new AlipaySdk({
  appId: cfg.app_id,
  privateKey: cfg.private_key,
  keyType: 'PKCS8',
  alipayPublicKey: cfg.alipay_public_key,
  gateway: cfg.gateway,
  signType: 'RSA2',
  camelcase: false,
  timeout: 10000,
});

const control = controlAt(cfg.base);

const call = (method, biz) => sdk.exec(method, { bizContent: biz }, { validateSign: true });
const out = {};
out.onboard = await call('ant.merchant.expand.indirect.create', {
  external_id: 'NODE001',
  name: '节点测试商户有限公司',
  alias_name: '节点测试',
  service_phone: '021-55556666',
  category_id: '2015050700000000',
  source: cfg.pid,
  contact_info: [{ name: '王五', type: 'LEGAL_PERSON', mobile: '13900139000' }],
});
const smid = out.onboard.sub_merchant_id;
const order = (no, amount, code) => ({
  out_trade_no: no,
  scene: 'bar_code',
  auth_code: code,
  subject: '测试商品 A&B=C/ok',
  total_amount: amount,
  store_id: 'NODE_STORE',
  terminal_id: 'NODE_T1',
  sub_merchant: { merchant_id: smid },
});
const code1 = (await control(`/sandbox/buyers/${cfg.buyer_id}/payment-codes`)).auth_code;
out.pay = await call('alipay.trade.pay', order('NODE_T1', '88.88', code1));
out.query = await call('alipay.trade.query', { out_trade_no: 'NODE_T1' });
out.refund = await call('alipay.trade.refund', { out_trade_no: 'NODE_T1', refund_amount: '8.88', out_request_no: 'NODE_R1' });
out.refund_query = await call('alipay.trade.fastpay.refund.query', { out_trade_no: 'NODE_T1', out_request_no: 'NODE_R1' });
const code2 = (await control(`/sandbox/buyers/${cfg.buyer_id}/payment-codes`)).auth_code;
out.pay2 = await call('alipay.trade.pay', order('NODE_T2', '10.00', code2));
out.cancel = await call('alipay.trade.cancel', { out_trade_no: 'NODE_T2' });
out.missing = await call('alipay.trade.query', { out_trade_no: 'NODE_NOPE' });
console.log(JSON.stringify(out));
