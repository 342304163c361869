// Drives jianlian's sandbox with the official Node SDK (alipay-sdk 4.14.0,
// validateSign: true) in certificate mode: configured with the three files
// the sandbox issued (app certificate, Alipay certificate, root bundle), by
// path and by content. Onboarding → pay → query → refund, with every raw
// answer checked to carry the Alipay certificate's SN; then the same calls
// with Alipay's production root bundle, which the sandbox must refuse.
// Prints one JSON object with every answer and the SNs the SDK computed.
// Usage: node sandbox_node_cert.mjs '<json config>' (written by the Rust test).
import fs from 'node:fs';
import urllib from 'urllib';
import { AlipaySdk } from 'alipay-sdk';
import { controlAt } from './control.mjs';

const cfg = JSON.parse(process.argv[2]);

// The SDK hands back parsed answers only; keep each raw body to check the
// `alipay_cert_sn` member, which the v2 protocol leaves unsigned.
const bodies = [];
const request = urllib.request;
urllib.request = async (url, options) => {
  const response = await request.call(urllib, url, options);
  bodies.push(String(response.data));
  return response;
};

const common = {
  appId: cfg.app_id,
  privateKey: cfg.private_key,
  keyType: 'PKCS8',
  gateway: cfg.gateway,
  signType: 'RSA2',
  camelcase: false,
  timeout: 10000,
};
const byPath = new AlipaySdk({
  ...common,
  appCertPath: cfg.app_cert_path,
  alipayPublicCertPath: cfg.alipay_cert_path,
  alipayRootCertPath: cfg.alipay_root_cert_path,
});
const byContent = new AlipaySdk({
  ...common,
  appCertContent: fs.readFileSync(cfg.app_cert_path, 'utf8'),
  alipayPublicCertContent: fs.readFileSync(cfg.alipay_cert_path, 'utf8'),
  alipayRootCertContent: fs.readFileSync(cfg.alipay_root_cert_path, 'utf8'),
});
const productionRoot = new AlipaySdk({
  ...common,
  appCertPath: cfg.app_cert_path,
  alipayPublicCertPath: cfg.alipay_cert_path,
  alipayRootCertPath: cfg.production_root_cert_path,
});

const control = controlAt(cfg.base);

const sns = (sdk) => ({
  app_cert_sn: sdk.config.appCertSn,
  alipay_cert_sn: sdk.config.alipayCertSn,
  alipay_root_cert_sn: sdk.config.alipayRootCertSn,
});
const out = { by_path: sns(byPath), by_content: sns(byContent) };
const call = async (sdk, method, biz) => {
  const before = bodies.length;
  const answer = await sdk.exec(method, { bizContent: biz }, { validateSign: true });
  const raw = bodies.slice(before);
  if (raw.length !== 1) throw new Error(`${method}: ${raw.length} HTTP exchanges`);
  answer.raw_alipay_cert_sn = JSON.parse(raw[0]).alipay_cert_sn ?? null;
  return answer;
};

out.onboard = await call(byPath, 'ant.merchant.expand.indirect.create', {
  external_id: 'NODECERT001',
  name: '证书模式测试商户有限公司',
  alias_name: '证书模式',
  service_phone: '021-55556666',
  category_id: '2015050700000000',
  source: cfg.pid,
  contact_info: [{ name: '王五', type: 'LEGAL_PERSON', mobile: '13900139000' }],
});
const code = (await control(`/sandbox/buyers/${cfg.buyer_id}/payment-codes`)).auth_code;
out.pay = await call(byPath, 'alipay.trade.pay', {
  out_trade_no: 'NODE_CERT_T1',
  scene: 'bar_code',
  auth_code: code,
  subject: '证书模式 A&B=C/ok',
  total_amount: '66.60',
  store_id: 'NODE_STORE',
  terminal_id: 'NODE_T1',
  sub_merchant: { merchant_id: out.onboard.sub_merchant_id },
});
out.query = await call(byContent, 'alipay.trade.query', { out_trade_no: 'NODE_CERT_T1' });
out.refund = await call(byContent, 'alipay.trade.refund', {
  out_trade_no: 'NODE_CERT_T1',
  refund_amount: '6.60',
  out_request_no: 'NODE_CERT_R1',
});
out.missing = await call(byPath, 'alipay.trade.query', { out_trade_no: 'NODE_CERT_NOPE' });
out.production_root = await call(productionRoot, 'alipay.trade.query', { out_trade_no: 'NODE_CERT_T1' });
console.log(JSON.stringify(out));
